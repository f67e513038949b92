"""``probe``: ask an entity's API what it does, and print the ``rest`` settings that fit."""

from __future__ import annotations

import json
from typing import Any

import click
from faust.cli import argument, option

from cdcsync.operators.probe import ProbeOptions, probe_entity
from cdcsync.schemas.config import Config
from cdcsync.streams.commands.support import emit_json, failing_cleanly
from cdcsync.streams.sync_app import SyncApp

__all__ = ["register"]


def _payload(text: str | None) -> dict[str, Any]:
    """``--payload``: a JSON object, or a usage error saying so."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param_hint="--payload") from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--payload")
    return value


def register(app: SyncApp, config: Config) -> None:
    """Attach ``probe`` to ``app``."""

    @app.command(
        argument("entity"),
        option("--write", is_flag=True, default=False,
               help="also create, update and delete ONE marked test object"),
        option("--field", default=None,
               help="field of the test object's marker (default: the first mapped field)"),
        option("--payload", default=None,
               help='JSON object the test object starts from, e.g. \'{"name": "x"}\''),
        option("--limit", type=click.IntRange(1, 1000), default=2,
               help="objects per listing page asked for (small, to see the paging)"),
        option("--as-json", "as_json", is_flag=True, default=False, help="print JSON"),
    )  # fmt: skip
    async def probe(
        self: Any,
        entity: str,
        write: bool,
        field: str | None,
        payload: str | None,
        limit: int,
        as_json: bool,
    ) -> None:
        """Call ENTITY's API as configured (read-only) and say which rest settings fit it.

        Reads one listing page, one object and their headers, with the configured auth;
        prints each finding as a line to paste (items_path, paging, total_header,
        version_source, ...). Nothing is written unless --write is given: then one object
        whose --field holds cdcsync-probe-<hex> is created, updated (first with a stale
        If-Match) and deleted, and the write answers are read (after_write, concurrency).
        """
        options = ProbeOptions(
            limit=limit, write=write, marker_field=field, payload=_payload(payload)
        )
        with failing_cleanly("probe"):
            report = await probe_entity(config, entity, options)
        if as_json or self.json:
            emit_json(report.to_json())
            return
        self.say(report.render())
