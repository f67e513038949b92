"""``status``, ``log`` and ``schemas``: look at what the sync did and what it publishes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import faust
from faust.cli import argument, option

from cdcsync.operators import log as execution_log
from cdcsync.operators.common import render_table
from cdcsync.operators.contracts import export_schemas
from cdcsync.operators.status import entity_status
from cdcsync.operators.timeparse import format_ms
from cdcsync.schemas.config import Config
from cdcsync.streams.commands.support import emit_json, failing_cleanly, parse_opt_time

__all__ = ["register"]


def _status_lines(data: dict[str, Any]) -> list[str]:
    state = data["state"] or {}
    result = data["last_result"]
    letter = data["last_dead_letter"]
    lines = [f"{data['entity']} {data['entity_id']}"]
    if not data["known"]:
        lines.append("  state:          none (never synced, or not yet)")
    else:
        lines += [
            f"  status:         {state.get('status')}",
            f"  external id:    {state.get('external_id') or '-'}",
            f"  link:           {data['link'] or '-'}",
            f"  rowId written:  {state.get('row_id') or '-'}",
            f"  payload hash:   {(state.get('payload_hash') or '-')[:16]}",
            f"  last error:     {state.get('last_error') or '-'}",
            f"  last applied:   p{state.get('last_partition')}@{state.get('last_offset')}"
            f" at {format_ms(state.get('updated_ms'))}",
            f"  state from:     {data['state_at']}",
        ]
    if result:
        lines.append(
            f"  last result:    {result['action']} ({result['reason']}) "
            f"at {format_ms(result['completed_ms'])}, {result['attempts']} attempt(s), "
            f"{result['api_calls']} API call(s)"
        )
    if letter:
        lines.append(
            f"  last dead letter: {letter['reason']} at {format_ms(letter['failed_ms'])}: "
            f"{letter['error'][:100]}"
        )
    return lines


def register(app: faust.App, config: Config) -> None:
    """Attach ``status``, ``log`` and ``schemas`` to ``app``."""
    _register_status(app, config)
    _register_log(app, config)
    _register_schemas(app)


def _register_status(app: faust.App, config: Config) -> None:
    """``status``: one entity's sync state, read from Kafka."""

    @app.command(
        argument("entity"),
        argument("entity_id"),
        option("--as-json", "as_json", is_flag=True, default=False, help="print JSON"),
    )
    async def status(self: Any, entity: str, entity_id: str, as_json: bool) -> None:
        """One entity's sync state: external id and link, rowId, status, last error,
        last result and last dead letter. Reads Kafka only: no worker needed.
        """
        with failing_cleanly("status"):
            data = entity_status(config, entity, entity_id).to_json()
        if as_json or self.json:
            emit_json(data)
        else:
            self.say("\n".join(_status_lines(data)))
        if not data["known"] and not data["last_result"] and not data["last_dead_letter"]:
            raise SystemExit(1)


def _register_log(app: faust.App, config: Config) -> None:
    """``log``: the execution log, filtered."""

    @app.command(
        option("--entity", default=None, help="only this entity"),
        option("--id", "ids", multiple=True, help="only this entity id (repeatable)"),
        option(
            "--action",
            "actions",
            multiple=True,
            type=click.Choice(["create", "update", "delete", "skip", "dead_letter"]),
            help="only this action (repeatable)",
        ),
        option("--since", default=None, help="from this time on (ISO-8601 or -15m)"),
        option("--limit", type=int, default=50, help="newest N entries (0: all read)"),
        option("--window", type=int, default=10_000, help="without --since: records per partition"),
        option("--as-json", "as_json", is_flag=True, default=False, help="print JSON lines"),
    )
    async def log(
        self: Any,
        entity: str | None,
        ids: tuple[str, ...],
        actions: tuple[str, ...],
        since: str | None,
        limit: int,
        window: int,
        as_json: bool,
    ) -> None:
        """The execution log: results and dead letters, filtered, newest last."""
        with failing_cleanly("log"):
            entries = execution_log.read_log(
                config,
                entity=entity,
                ids=ids,
                actions=actions,
                since_ms=parse_opt_time(since),
                limit=limit,
                window=window,
            )
        if as_json or self.json:
            for entry in entries:
                click.echo(entry.event.model_dump_json())
            return
        self.say(render_table(execution_log.HEADERS, execution_log.rows(entries)))


def _register_schemas(app: faust.App) -> None:
    """``schemas export``: the event and configuration JSON Schemas, one file each."""

    @app.command(
        argument("action", type=click.Choice(["export"])),
        argument("directory", type=click.Path(file_okay=False, path_type=Path)),
    )
    async def schemas(self: Any, action: str, directory: Path) -> None:
        """Export the JSON Schemas of the result and dead-letter events and the
        configuration file, one file each, for downstream consumers.
        """
        for path in export_schemas(directory):
            self.say(str(path))
