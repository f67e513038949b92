"""``replay``, ``resync``, ``dlq`` and ``trigger``: put things right while the worker runs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import click
import faust
from faust.cli import argument, option

from cdcsync.operators import dlq as dead_letters
from cdcsync.operators.common import OffsetRange, OperatorError, render_table
from cdcsync.operators.replay import replay as run_replay
from cdcsync.operators.resync import resync as run_resync
from cdcsync.operators.timeparse import format_ms
from cdcsync.operators.trigger import trigger as run_trigger
from cdcsync.schemas.config import Config
from cdcsync.streams.commands.support import emit_json, failing_cleanly, parse_opt_time, progress

__all__ = ["register"]

Say = Callable[[str], None]


def register(app: faust.App, config: Config) -> None:
    """Attach ``replay``, ``resync``, ``dlq`` and ``trigger`` to ``app``."""
    _register_replay(app, config)
    _register_resync(app, config)
    _register_dlq(app, config)
    _register_trigger(app, config)


def _register_replay(app: faust.App, config: Config) -> None:
    """``replay``: re-publish a time range of an entity topic into it."""

    @app.command(
        argument("entity"),
        option("--since", required=True, help="start: ISO-8601 (2025-01-31T14:00) or -15m, -2h"),
        option("--until", default=None, help="end (exclusive), same forms; default: now"),
        option("--id", "ids", multiple=True, help="replay only this entity id (repeatable)"),
        option(
            "--origin",
            type=click.Choice(["source", "external"]),
            default=None,
            help="only database changes (source) or only external changes; default both",
        ),
        option("--dry-run", is_flag=True, default=False, help="count what would be replayed"),
    )
    async def replay(
        self: Any,
        entity: str,
        since: str,
        until: str | None,
        ids: tuple[str, ...],
        origin: str | None,
        dry_run: bool,
    ) -> None:
        """Re-publish an entity topic's records from a time range back into it.

        Offsets are found by record timestamp; each copy keeps its key bytes and
        partition and carries a `cdcsync-replay: topic/partition/offset` header.
        Tombstones and earlier replay copies are left out. The worker keeps
        running and processes the copies in order with everything else.
        """
        with failing_cleanly("replay"), contextlib.ExitStack() as stack:

            def on_plan(ranges: list[OffsetRange]) -> Any:
                total = sum(r.size for r in ranges)
                label = "scanning" if dry_run else "replaying"
                return stack.enter_context(progress(label, total))

            report = run_replay(
                config,
                entity,
                since_ms=parse_opt_time(since) or 0,
                until_ms=parse_opt_time(until),
                ids=ids,
                origin=origin,
                dry_run=dry_run,
                on_plan=on_plan,
            )
        self.say(report.summary())


def _register_resync(app: faust.App, config: Config) -> None:
    """``resync``: a Debezium incremental snapshot of an entity's rows."""

    @app.command(
        argument("entity"),
        option("--filter", "sql_filter", default=None, help="SQL condition on the table's rows"),
        option("--no-wait", is_flag=True, default=False, help="signal and return at once"),
        option("--timeout", type=float, default=600.0, help="seconds to wait for the rows"),
    )
    async def resync(
        self: Any, entity: str, sql_filter: str | None, no_wait: bool, timeout: float
    ) -> None:
        """Resync an entity without downtime: a Debezium incremental snapshot.

        Counts the rows the filter matches, inserts an `execute-snapshot` signal
        into the connector's signal table, then follows the entity topic until
        every matching row has arrived as a snapshot record. Example:
        cdcsync resync contact --filter "email LIKE '%@example.org'"
        """
        with failing_cleanly("resync"), contextlib.ExitStack() as stack:
            report = run_resync(
                config,
                entity,
                sql_filter=sql_filter,
                wait=not no_wait,
                timeout_s=timeout,
                on_plan=lambda n: stack.enter_context(progress("snapshot rows", n)),
            )
        if not report.expected:
            self.say(f"no rows of {report.collection} match; nothing to resync")
            return
        self.say(report.summary())
        if report.waited and not report.done:
            click.echo(
                f"cdcsync resync: timed out after {timeout:.0f}s; the snapshot goes on in "
                "Debezium (see .cdcsync/logs/connect.log); rows deleted meanwhile never arrive",
                err=True,
            )
            raise SystemExit(2)


def _register_dlq(app: faust.App, config: Config) -> None:
    """``dlq``: list, show or redrive dead letters."""

    @app.command(
        argument("action", type=click.Choice(["list", "show", "redrive"])),
        option("--entity", default=None, help="only this entity"),
        option("--id", "ids", multiple=True, help="only this entity id (repeatable)"),
        option("--since", default=None, help="only dead letters from this time on"),
        option("--force", is_flag=True, default=False, help="redrive: also already redriven ones"),
    )
    async def dlq(
        self: Any,
        action: str,
        entity: str | None,
        ids: tuple[str, ...],
        since: str | None,
        force: bool,
    ) -> None:
        """Inspect dead letters and send them back to their original topic.

        list: one line each; show: each in full, original record included;
        redrive: re-publish each original record (key and value bytes as they
        were) to its topic and partition with a `cdcsync-redrive` header, once.
        """
        with failing_cleanly("dlq"):
            letters = dead_letters.load_letters(
                config, since_ms=parse_opt_time(since), entity=entity, ids=ids
            )
            dead_letters.mark_redriven(config, letters)
            if action == "list":
                _list_letters(letters, self.say)
            elif action == "show":
                emit_json([dead_letters.show(e) for e in letters])
            else:
                _redrive_letters(config, letters, force=force, say=self.say)


def _list_letters(letters: list[dead_letters.Letter], say: Say) -> None:
    """``dlq list``: one table line per dead letter, then how many."""
    rows = [
        (
            e.mark,
            format_ms(e.letter.failed_ms),
            e.letter.entity,
            e.letter.entity_id or "-",
            e.letter.reason,
            e.letter.attempts,
            "yes" if e.redriven else "",
            e.letter.error[:70],
        )
        for e in letters
    ]
    head = ("at", "failed", "entity", "id", "reason", "tries", "redriven", "error")
    say(render_table(head, rows))
    say(f"{len(letters)} dead letters")


def _redrive_letters(
    config: Config, letters: list[dead_letters.Letter], *, force: bool, say: Say
) -> None:
    """``dlq redrive``: re-publish each letter with a progress bar, then say what was skipped."""
    if not letters:
        raise OperatorError("no dead letters match; `cdcsync dlq list` shows them")
    with progress("redriving", len(letters)) as advance:
        report = dead_letters.redrive(config, letters, force=force, advance=advance)
    say(report.summary())
    for entry, why in report.skipped:
        say(f"  {entry.mark} {entry.letter.entity} {entry.letter.entity_id}: {why}")


def _register_trigger(app: faust.App, config: Config) -> None:
    """``trigger``: publish one entity's current row so it syncs now."""

    @app.command(argument("entity"), argument("entity_id"))
    async def trigger(self: Any, entity: str, entity_id: str) -> None:
        """Sync one entity now: publish its current row as a snapshot read (op "r").

        The record is keyed exactly like Debezium's, so it is processed in order
        with the entity's other changes; `cdcsync status ENTITY ID` shows the outcome.
        """
        with failing_cleanly("trigger"):
            sent = run_trigger(config, entity, entity_id)
        self.say(f"{entity} {entity_id}: published to {sent.topic}[{sent.partition}]@{sent.offset}")
