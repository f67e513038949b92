"""Fixtures of the streams tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


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
