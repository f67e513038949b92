"""``reconcile``: compare both sides of an entity in full, report the drift, optionally repair it.

The comparison is :func:`cdcsync.operators.reconcile.compare`; this module reads
its inputs with progress on stderr (stdout stays clean for ``--as-json``), prints
the report, and for ``--repair`` publishes one trigger record per repairable id,
exactly as ``cdcsync trigger`` does, so the worker re-checks and repairs each in
order with the entity's other changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click
import faust
from faust.cli import argument, option

from cdcsync.errors import CdcsyncError
from cdcsync.mappers.loader import build_mapper
from cdcsync.operators import reconcile as ops
from cdcsync.operators.common import entity_config, render_table
from cdcsync.operators.reconcile import Report
from cdcsync.operators.trigger import trigger
from cdcsync.schemas.config import Config
from cdcsync.streams.commands.support import emit_json, failing_cleanly, progress

__all__ = ["DRIFT_EXIT", "register"]

#: Exit status when the sides differ (0: equal, 1: the command failed).
DRIFT_EXIT = 3
MISSING_SOURCE_NOTE = (
    "external objects no row claims are only reported: cdcsync never deletes external data "
    "on its own; delete them in the external system, or insert the rows they belong to"
)


def _note(line: str) -> None:
    click.echo(line, err=True)


def _counter(label: str, every_s: float = 2.0) -> Callable[[int], None]:
    """``on_record(n)``: a line on stderr at most every ``every_s`` seconds (the total of a
    paged listing is unknown up front, so a bar cannot be drawn).
    """
    last = [time.monotonic()]

    def tick(count: int) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            _note(f"{label}: {count}...")

    return tick


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def report_lines(entity: str, report: Report, limit: int) -> list[str]:
    """The human report: a summary table, then up to ``limit`` lines per category (0: all)."""
    lines = [
        f"reconcile {entity}: {report.rows} rows, {report.records} external objects",
        render_table(("category", "count"), report.counts().items()),
    ]

    def section(name: str, items: list[str]) -> None:
        if not items:
            return
        shown = items if limit <= 0 else items[:limit]
        lines.append(f"\n{name} ({len(items)}):")
        lines.extend(f"  {item}" for item in shown)
        if len(shown) < len(items):
            lines.append(f"  ... {len(items) - len(shown)} more (--limit 0 or --as-json: all)")

    section(
        "missing_external",
        [
            f"{m.entity_id}"
            + (f"  (linked to {m.external_id}, object gone)" if m.external_id else "")
            for m in report.missing_external
        ],
    )
    section(
        "differs",
        [
            f"{d.entity_id} -> {d.external_id}"
            + ("  (by natural key)" if d.linked_by == "natural_key" else "")
            + ": "
            + "; ".join(
                f"{f.field}: source {_short(f.source)} != external {_short(f.external)}"
                for f in d.fields
            )
            for d in report.differs
        ],
    )
    section(
        "missing_source",
        [
            f"{m.external_id}" + (f"  (was linked to row {m.entity_id})" if m.entity_id else "")
            for m in report.missing_source
        ],
    )
    if report.missing_source:
        lines.append(f"  note: {MISSING_SOURCE_NOTE}")
    section("unmappable", [f"{u.entity_id}: {u.error}" for u in report.unmappable])
    return lines


def repair(
    config: Config, entity: str, ids: list[str], advance: Callable[[int], None]
) -> tuple[int, list[tuple[str, str]]]:
    """Trigger a re-check of each id; ``(sent, [(id, why not)])`` (a row deleted meanwhile
    is not sent: its delete event is synced on its own).
    """
    sent, failed = 0, list[tuple[str, str]]()
    for entity_id in ids:
        try:
            trigger(config, entity, entity_id)
            sent += 1
        except CdcsyncError as exc:
            failed.append((entity_id, str(exc)))
        advance(1)
    return sent, failed


async def _compare_sides(config: Config, entity: str) -> Report:
    """Read the external objects, the rows and the sync state's links, noting progress on
    stderr, and compare them.
    """
    cfg = entity_config(config, entity)
    mapper = build_mapper(cfg.mapping, cfg.mapper, cfg.mapper_options, where=f"entities.{entity}")
    # Objects first, the state last: an event in flight meanwhile then shows as
    # missing_external (a re-check repairs it harmlessly), never as missing_source.
    _note(f"listing external objects of {entity}...")
    records = await ops.list_external(config, entity, on_record=_counter("external objects listed"))
    _note(f"{len(records)} external objects; reading the rows...")
    rows = ops.read_rows(config, entity)
    _note(f"{len(rows)} rows; reading the sync state...")
    links = ops.read_links(config, entity)
    return ops.compare(rows, records, links, mapper, cfg.natural_key)


def _repair_lines(
    entity: str, report: Report, sent: int, failed: list[tuple[str, str]]
) -> list[str]:
    """What ``--repair`` did, for the human report: records sent, ids not sent and why."""
    lines = [
        f"\nrepair: sent {sent} trigger record(s) for missing_external and differs; "
        f"run `cdcsync reconcile {entity}` again once the worker processed them"
    ]
    lines += [f"  not sent {eid}: {why}" for eid, why in failed]
    if report.missing_source:
        lines.append(f"  {len(report.missing_source)} missing_source left as they are")
    return lines


def register(app: faust.App, config: Config) -> None:
    """Attach ``reconcile`` to ``app``."""

    @app.command(
        argument("entity"),
        option(
            "--repair",
            "repair_",
            is_flag=True,
            default=False,
            help="trigger a re-check of each drift",
        ),
        option("--limit", type=int, default=50, help="lines per category (0: all)"),
        option("--as-json", "as_json", is_flag=True, default=False, help="print the full report"),
    )
    async def reconcile(self: Any, entity: str, repair_: bool, limit: int, as_json: bool) -> None:
        """Compare every row with every external object under the mapping; report drift.

        Rows pair with objects through the sync state, else by the natural key.
        Categories: missing_external (a row without its object), missing_source
        (an object no row claims: reported only, never deleted), differs (mapped
        fields disagree), unmappable, equal. --repair publishes a trigger record
        for each missing_external and differs id, as `cdcsync trigger` does; the
        worker re-checks and repairs them (run reconcile again to verify). Exit
        status 3 when the sides differ. Reads only: no worker needed without --repair.
        """
        with failing_cleanly("reconcile"):
            report = await _compare_sides(config, entity)
            sent, failed = 0, list[tuple[str, str]]()
            todo = report.repairable() if repair_ else []
            if todo:
                with progress("triggering re-checks", len(todo)) as advance:
                    sent, failed = repair(config, entity, todo, advance)
        if as_json or self.json:
            data = report.to_json()
            if repair_:
                data["repair"] = {"sent": sent, "failed": [list(f) for f in failed]}
            emit_json(data)
        else:
            lines = report_lines(entity, report, limit)
            if report.clean:
                lines.append("\nboth sides are equal")
            if repair_:
                lines += _repair_lines(entity, report, sent, failed)
            self.say("\n".join(lines))
        if not report.clean:
            raise SystemExit(DRIFT_EXIT)
