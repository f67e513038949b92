"""``cdcsync demo``: the demo as a command of the CLI.

Declared here, with the demo, rather than in ``cdcsync.streams.commands``
(streams sits below demo and never imports it): the app's ``autodiscover``
list (``cdcsync.streams.app.DISCOVERED_COMMANDS``) imports this module when
the CLI starts, and the command reads the configuration from the app it runs in.
"""

from __future__ import annotations

from typing import Any

import click
from faust.cli import option

from cdcsync.demo.run import run_demo
from cdcsync.streams.commands.support import command
from cdcsync.streams.config import default_config_path
from cdcsync.streams.sync_app import SyncApp

__all__ = ["demo"]


@command(
    option("--rows", type=int, default=5, help="contacts to insert"),
    option(
        "--keep-running",
        is_flag=True,
        default=False,
        help="leave the worker and the reference API running at the end",
    ),
)
async def demo(self: Any, rows: int, keep_running: bool) -> None:
    """The demo: stack, reference API and worker up, then rows change and sync."""
    app = self.app
    if not isinstance(app, SyncApp):
        raise click.ClickException(f"{type(app).__name__} is not cdcsync's app: no configuration")
    await run_demo(
        app.config,
        config_path=app.config_path or default_config_path(),
        rows=rows,
        keep_running=keep_running,
        say=self.say,
    )
