"""The operator commands are on the CLI, with help, and need no services to export schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def cdcsync(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CDCSYNC_CONFIG": str(ROOT / "demo" / "cdcsync.yaml")}
    return subprocess.run(
        [sys.executable, "-m", "cdcsync.streams", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_every_operator_command_is_listed_with_its_help():
    listing = cdcsync("--help").stdout
    for name in ("replay", "resync", "dlq", "status", "trigger", "log", "schemas", "local"):
        assert f"  {name} " in listing
    replay = cdcsync("replay", "--help").stdout
    assert "--since" in replay and "--dry-run" in replay and "cdcsync-replay" in replay


def test_schemas_export_writes_one_file_per_contract(tmp_path: Path):
    done = cdcsync("schemas", "export", str(tmp_path / "schemas"))
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in (tmp_path / "schemas").iterdir())
    assert written == [
        "audit.v1.schema.json",
        "config.v1.schema.json",
        "conflict.v1.schema.json",
        "dead-letter.v1.schema.json",
        "notification.v1.schema.json",
        "operator-action.v1.schema.json",
        "sync-result.v1.schema.json",
    ]
    assert json.loads((tmp_path / "schemas" / written[-1]).read_text())["$id"].endswith(":v1")


def test_bad_input_is_one_line_on_stderr_and_exit_1():
    done = cdcsync("replay", "contact", "--since", "yesterday")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("cdcsync replay: cannot read the time 'yesterday'")
    assert "Traceback" not in done.stderr


def test_providers_list_shows_each_provider_with_its_settings_and_defaults():
    done = cdcsync("providers", "list", "--as-json")
    assert done.returncode == 0, done.stderr
    providers = {p["identifier"]: p for p in json.loads(done.stdout)}
    assert {"rest", "postgres"} <= set(providers)
    settings = {s["name"]: s for s in providers["rest"]["settings"]}
    assert settings["base_url"]["required"] and settings["page_size"]["default"] == 100
    assert settings["token"]["secret"] and providers["rest"]["description"]
    text = cdcsync("providers").stdout
    assert "rest  Generic JSON REST API" in text and "page_size: int = 100" in text


def test_the_config_schema_describes_each_providers_settings(tmp_path: Path):
    import jsonschema
    import yaml

    assert cdcsync("schemas", "export", str(tmp_path)).returncode == 0
    schema = json.loads((tmp_path / "config.v1.schema.json").read_text())
    demo = yaml.safe_load((ROOT / "examples" / "orders" / "cdcsync.yaml").read_text())
    jsonschema.validate(demo, schema)
    demo["integrations"]["shop"]["settings"]["page_size"] = "many"
    try:
        jsonschema.validate(demo, schema)
    except jsonschema.ValidationError as exc:
        assert "page_size" in str(exc.absolute_path) or "many" in exc.message
    else:
        raise AssertionError("a wrong provider setting passed the exported schema")
