"""Replay: re-publish a time range of an entity topic back into it, marked as replays.

The worker keeps running: each copy goes to the partition its original came
from, with the original key bytes and value, and a ``cdcsync-replay`` header
naming the original ``topic/partition/offset``, so the agent processes it like
any other change of that entity, in order with the rest of its partition.

What is not replayed, and why:

* tombstones: they carry no change (the agent skips them anyway);
* earlier replay copies: the original they copy is replayed instead when it is
  in the range, so replaying twice never doubles a change;
* records written after the command started: the range ends at the partition
  ends read at the start, so a replay never feeds on its own copies.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from cdcsync.errors import SchemaError
from cdcsync.operators.common import (
    OffsetRange,
    OperatorError,
    consumer,
    entity_config,
    header,
    producer,
    read_ranges,
    time_ranges,
)
from cdcsync.schemas.config import Config
from cdcsync.schemas.envelope import REPLAY_HEADER, parse_key

__all__ = ["ReplayReport", "origin_of", "replay", "replay_headers", "select"]


class RecordLike(Protocol):
    """The parts of a Kafka record replay looks at (kafka-python's ConsumerRecord)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Any


def origin_of(value: bytes) -> str:
    """``external`` for a pull-direction record (poller, webhook of the external side),
    else ``source`` (Debezium's changes, triggers, snapshots)."""
    try:
        data = json.loads(value)
    except ValueError:
        return "source"
    return "external" if isinstance(data, dict) and data.get("origin") == "external" else "source"


def select(
    record: RecordLike,
    *,
    key_field: str,
    ids: Collection[str] = (),
    since_ms: int | None = None,
    until_ms: int | None = None,
    origin: str | None = None,
) -> str | None:
    """``None`` when ``record`` is to be replayed, else why not (a short reason).

    ``origin`` (``source`` or ``external``) keeps only the records of that direction.
    """
    if since_ms is not None and record.timestamp < since_ms:
        return "before --since"
    if until_ms is not None and record.timestamp >= until_ms:
        return "after --until"
    if header(record, REPLAY_HEADER) is not None:  # type: ignore[arg-type]
        return "an earlier replay copy"
    if record.value is None:
        return "tombstone"
    if ids:
        try:
            entity_id = parse_key(record.key, key_field=key_field)
        except SchemaError:
            return "key is not an entity key"
        if entity_id not in ids:
            return "another id"
    if origin is not None and origin_of(record.value) != origin:
        return f"not from the {origin} side"
    return None


def replay_headers(record: RecordLike) -> list[tuple[str, bytes]]:
    """The original headers plus ``cdcsync-replay: topic/partition/offset``."""
    kept = [(k, bytes(v)) for k, v in (record.headers or ()) if k != REPLAY_HEADER]
    origin = f"{record.topic}/{record.partition}/{record.offset}".encode()
    return [*kept, (REPLAY_HEADER, origin)]


@dataclass
class ReplayReport:
    """What a replay did (or, in a dry run, would do)."""

    topic: str
    scanned: int = 0
    replayed: int = 0
    ids: set[str] = field(default_factory=set)
    by_partition: Counter[int] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    def count(self, record: RecordLike, *, key_field: str) -> None:
        """Count one record selected for replay: its partition, and its id when the key has one."""
        self.replayed += 1
        self.by_partition[record.partition] += 1
        try:
            self.ids.add(parse_key(record.key, key_field=key_field))
        except SchemaError:
            pass  # replayed as is: the agent dead-letters it again, with its reason

    def summary(self) -> str:
        """One paragraph for the terminal."""
        verb = "would replay" if self.dry_run else "replayed"
        parts = ", ".join(f"p{p}: {n}" for p, n in sorted(self.by_partition.items())) or "none"
        text = (
            f"{verb} {self.replayed} of {self.scanned} records of {self.topic} "
            f"({len(self.ids)} ids; {parts})"
        )
        if self.skipped:
            text += "; left out: " + ", ".join(f"{n} {why}" for why, n in self.skipped.items())
        return text


Progress = Callable[[int], None]


def replay(
    config: Config,
    entity: str,
    *,
    since_ms: int,
    until_ms: int | None = None,
    ids: Collection[str] = (),
    origin: str | None = None,
    dry_run: bool = False,
    on_plan: Callable[[list[OffsetRange]], Progress] | None = None,
) -> ReplayReport:
    """Replay ``entity``'s records timestamped in ``[since_ms, until_ms)``.

    ``on_plan`` receives the offset ranges before anything is read and returns
    a progress callback called with the number of records just scanned.
    """
    if until_ms is not None and until_ms <= since_ms:
        raise OperatorError("--until must be later than --since")
    cfg = entity_config(config, entity)
    report = ReplayReport(topic=cfg.topic, dry_run=dry_run)
    wanted = {str(i) for i in ids}
    cons = consumer(config)
    prod = None if dry_run else producer(config)
    try:
        ranges = time_ranges(cons, cfg.topic, since_ms, until_ms)
        advance = on_plan(ranges) if on_plan else (lambda _n: None)
        for record in read_ranges(cons, cfg.topic, ranges):
            report.scanned += 1
            advance(1)
            why = select(
                record,
                key_field=cfg.key,
                ids=wanted,
                since_ms=since_ms,
                until_ms=until_ms,
                origin=origin,
            )
            if why is not None:
                report.skipped[why] += 1
                continue
            report.count(record, key_field=cfg.key)
            if prod is not None:
                prod.send(
                    cfg.topic,
                    key=record.key,
                    value=record.value,
                    partition=record.partition,
                    headers=replay_headers(record),
                )
        if prod is not None:
            prod.flush()
    finally:
        cons.close()
        if prod is not None:
            prod.close()
    return report
