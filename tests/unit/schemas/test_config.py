"""The configuration's shapes: importable alone, split by job, re-exported in one place."""

from __future__ import annotations

import subprocess
import sys

from cdcsync.schemas import config as config_module
from cdcsync.schemas import entities, integrations
from cdcsync.schemas.config import Config, target_where

TARGET = {"settings": {"base_url": "http://127.0.0.1:1"}}


def _config() -> Config:
    return Config.model_validate(
        {
            "integrations": {"crm": {"provider": "rest"}},
            "entities": {
                "contact": {"topic": "t.c", "mapping": {"e": "e"}, "target": "crm"},
                "lead": {"topic": "t.l", "mapping": {"e": "e"}, "target": {"provider": "rest"}},
            },
        }
    )


def test_target_where_names_the_integration_an_entity_uses() -> None:
    config = _config()
    assert target_where(config, "contact") == "entities.contact.target (integrations.crm)"
    assert target_where(config, "lead") == "entities.lead.target"


def test_every_model_is_importable_from_schemas_config() -> None:
    for module in (entities, integrations):
        for name in module.__all__:
            assert getattr(config_module, name) is getattr(module, name)
            assert name in config_module.__all__


def test_the_shapes_import_no_loader_and_nothing_above_them() -> None:
    code = (
        "import sys, cdcsync.schemas.config\n"
        "print(sorted(m for m in sys.modules if m.startswith('cdcsync.') or m == 'yaml'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = {m.strip("' ") for m in done.stdout.strip("[]\n").split(",")}
    assert loaded <= {"cdcsync.errors"} | {m for m in loaded if m.startswith("cdcsync.schemas")}
