"""``cdcsync demo`` lives with the demo and runs it with the app's configuration."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest

from cdcsync.demo import command
from cdcsync.schemas.config import Config
from cdcsync.streams.app import DISCOVERED_COMMANDS, create_app


async def test_the_demo_runs_with_the_apps_configuration_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    async def run_demo(config: Config, **kwargs: Any) -> None:
        calls.append({"config": config, **kwargs})

    monkeypatch.setattr(command, "run_demo", run_demo)
    config = Config.model_validate({"app": {"datadir": str(tmp_path)}, "entities": {}})
    app = create_app(config, config_path=tmp_path / "cdcsync.yaml")
    said: list[str] = []
    await command.demo.run(SimpleNamespace(app=app, say=said.append), rows=7, keep_running=True)
    assert calls == [
        {
            "config": config,
            "config_path": tmp_path / "cdcsync.yaml",
            "rows": 7,
            "keep_running": True,
            "say": said.append,
        }
    ]


async def test_without_the_configured_app_it_says_so() -> None:
    with pytest.raises(click.ClickException, match="no configuration"):
        await command.demo.run(SimpleNamespace(app=object(), say=print), rows=1, keep_running=False)


def test_the_app_discovers_the_demo_command() -> None:
    assert command.__name__ in DISCOVERED_COMMANDS
