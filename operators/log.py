"""The execution log: results and dead letters, filtered, newest last.

Read from the results and dead-letter topics. With ``--since`` every record
from that time on is read; without it, the last ``window`` records (10,000 by
default) of each partition. With ``--id`` only the partitions those ids are
keyed to are read (both topics are keyed by the entity id).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from cdcsync.operators.common import (
    consumer,
    key_partition,
    partitions,
    read_ranges,
    tail_ranges,
    time_ranges,
)
from cdcsync.operators.timeparse import format_ms
from cdcsync.schemas.config import Config
from cdcsync.schemas.events import DeadLetter, SyncResult

__all__ = ["ACTIONS", "DEFAULT_WINDOW", "LogEntry", "entry_from", "read_log", "rows", "select"]

DEFAULT_WINDOW = 10_000
#: What ``--action`` accepts: the result actions, and ``dead_letter``.
ACTIONS = ("create", "update", "delete", "skip", "dead_letter")
HEADERS = ("time", "entity", "id", "action", "reason", "external / error", "source", "tries")


@dataclass(frozen=True)
class LogEntry:
    """One line of the execution log."""

    time_ms: int
    event: SyncResult | DeadLetter

    @property
    def action(self) -> str:
        """The result's action, or ``dead_letter``."""
        return self.event.action if isinstance(self.event, SyncResult) else "dead_letter"


def entry_from(value: bytes | None) -> LogEntry | None:
    """Parse one results or dead-letter record; ``None`` when it is neither."""
    if not value:
        return None
    try:
        kind = json.loads(value).get("kind")
        if kind == "result":
            result = SyncResult.model_validate_json(value)
            return LogEntry(result.completed_ms, result)
        if kind == "dead_letter":
            letter = DeadLetter.model_validate_json(value)
            return LogEntry(letter.failed_ms, letter)
    except (ValueError, AttributeError, ValidationError):
        return None
    return None


def select(
    entry: LogEntry,
    *,
    entity: str | None = None,
    ids: Collection[str] = (),
    actions: Collection[str] = (),
    since_ms: int | None = None,
) -> bool:
    """Whether ``entry`` passes every filter given."""
    event = entry.event
    if entity is not None and event.entity != entity:
        return False
    if ids and event.entity_id not in ids:
        return False
    if actions and entry.action not in actions:
        return False
    return since_ms is None or entry.time_ms >= since_ms


def read_log(
    config: Config,
    *,
    entity: str | None = None,
    ids: Collection[str] = (),
    actions: Collection[str] = (),
    since_ms: int | None = None,
    limit: int = 50,
    window: int = DEFAULT_WINDOW,
) -> list[LogEntry]:
    """The ``limit`` newest matching entries, oldest first."""
    wanted = {str(i) for i in ids}
    found: list[LogEntry] = []
    topics = []
    if not actions or set(actions) - {"dead_letter"}:
        topics.append(config.topics.results)
    if not actions or "dead_letter" in actions:
        topics.append(config.topics.dead_letters)
    cons = consumer(config)
    try:
        for topic in topics:
            count = len(partitions(cons, topic))
            only = sorted({key_partition(i.encode(), count) for i in wanted}) if wanted else None
            if since_ms is not None:
                ranges = [
                    r
                    for r in time_ranges(cons, topic, since_ms)
                    if only is None or r.partition in only
                ]
            else:
                ranges = tail_ranges(cons, topic, window, only=only)
            record: ConsumerRecord
            for record in read_ranges(cons, topic, ranges):
                entry = entry_from(record.value)
                if entry and select(
                    entry, entity=entity, ids=wanted, actions=actions, since_ms=since_ms
                ):
                    found.append(entry)
    finally:
        cons.close()
    found.sort(key=lambda e: e.time_ms)
    return found[-limit:] if limit > 0 else found


def rows(entries: Sequence[LogEntry]) -> list[tuple[str, ...]]:
    """Table rows for :data:`HEADERS`."""
    out: list[tuple[str, ...]] = []
    for entry in entries:
        event = entry.event
        src = f"{event.source.topic}[{event.source.partition}]@{event.source.offset}"
        if isinstance(event, SyncResult):
            ext = event.external
            detail = (ext.link or f"{ext.type} {ext.id}") if ext else ""
            reason = event.reason
        else:
            detail = f"{event.error_type}: {event.error}"[:80]
            reason = event.reason
        out.append(
            (
                format_ms(entry.time_ms),
                event.entity,
                event.entity_id or "-",
                entry.action,
                reason,
                detail,
                src,
                str(event.attempts),
            )
        )
    return out
