"""``cdcsync local`` and ``cdcsync demo``: the local stack and the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import faust
from faust.cli import argument, option

from cdcsync.schemas.config import Config
from cdcsync.streams.topics import topic_specs

__all__ = ["SCHEMA_SQL", "register", "stack_up"]

SCHEMA_SQL = Path(__file__).resolve().parents[2] / "demo" / "schema.sql"


def stack_up(config: Config, *, progress: Any = print) -> None:
    """Start (or reuse) the local stack with this configuration's topics and connectors."""
    from cdcsync.connect.register import connector_files
    from cdcsync.stack import local

    local.up(
        sql_files=[SCHEMA_SQL],
        topics=topic_specs(config),
        connector_files=connector_files(),
        progress=progress,
    )


def register(app: faust.App, config: Config) -> None:
    """Attach ``local`` and ``demo`` to ``app``."""

    @app.command(
        argument("action", type=click.Choice(["up", "down", "status"])),
        option(
            "--wipe",
            is_flag=True,
            default=False,
            help="with down: also delete data, the replication slot and Connect offsets",
        ),
    )
    async def local(self: Any, action: str, wipe: bool) -> None:
        """Run the local stack: PostgreSQL, Kafka (KRaft), Kafka Connect with Debezium."""
        from cdcsync.stack import local as stack

        if action == "up":
            stack_up(config, progress=self.say)
        elif action == "down":
            stack.down(wipe=wipe, progress=self.say)
        else:
            self.say(stack.format_status(stack.status()))

    @app.command(
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
        from cdcsync.demo.run import run_demo

        await run_demo(config, rows=rows, keep_running=keep_running, say=self.say)
