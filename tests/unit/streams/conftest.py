"""Fixtures of the streams tests: configuration files, the worker app's Kafka clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdcsync.schemas.config import Config


@pytest.fixture
def config_text(tmp_path: Path) -> Callable[[str | None], Path]:
    """Writes a configuration file holding the text given (``None``: no file) and gives its
    path."""

    def write(content: str | None) -> Path:
        path = tmp_path / "cdcsync.yaml"
        if content is not None:
            path.write_text(content)
        return path

    return write


@pytest.fixture
def consumer(tmp_path: Any) -> Iterator[Any]:
    """The worker app's consumer (not started); its thread's event loop closed after."""
    from cdcsync.streams.app import create_app

    data = {
        "app": {"id": "t-commits", "datadir": str(tmp_path)},
        "entities": {
            "contact": {
                "topic": "t.contact",
                "mapping": {"email": "email"},
                "target": {"provider": "rest", "settings": {"base_url": "http://127.0.0.1:1"}},
            }
        },
    }
    made = create_app(Config.model_validate(yaml.safe_load(yaml.safe_dump(data)))).consumer
    yield made
    made._thread.thread_loop.close()
