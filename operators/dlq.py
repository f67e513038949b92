"""Dead letters: list, show and redrive them to the topic they came from.

A dead letter (``schemas.events.DeadLetter``) holds the original record's key
and value (text, or base64 when they were not UTF-8) and its source position.
Redriving re-publishes those bytes to the original topic and partition with a
``cdcsync-redrive: <dead-letter partition>/<offset>`` header, so the agent
processes the record again, in order with its entity's other changes.

Without ``--since`` the whole dead-letter topic is read (dead letters are
few; its retention bounds it). Whether a dead letter was already redriven is
found by looking for its header on the entity topics from the time of the
oldest dead letter shown.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from pydantic import ValidationError

from cdcsync.operators.common import (
    REDRIVE_HEADER,
    OffsetRange,
    consumer,
    header,
    partitions,
    producer,
    read_ranges,
    time_ranges,
)
from cdcsync.schemas.config import Config
from cdcsync.schemas.events import DeadLetter, RawRecord

__all__ = [
    "Letter",
    "RedriveReport",
    "load_letters",
    "mark_redriven",
    "matches",
    "original_bytes",
    "redrive",
    "show",
]


@dataclass
class Letter:
    """One dead letter and where it sits in the dead-letter topic."""

    letter: DeadLetter
    partition: int
    offset: int
    timestamp: int
    redriven: bool = False

    @property
    def mark(self) -> str:
        """The value of the ``cdcsync-redrive`` header a redrive of it carries."""
        return f"{self.partition}/{self.offset}"


def matches(letter: DeadLetter, *, entity: str | None = None, ids: Collection[str] = ()) -> bool:
    """Whether ``letter`` passes the ``--entity`` and ``--id`` filters."""
    if entity is not None and letter.entity != entity:
        return False
    return not ids or letter.entity_id in ids


def original_bytes(raw: RawRecord) -> tuple[bytes | None, bytes | None]:
    """The original record's key and value bytes, decoded as the dead letter stored them."""
    if raw.encoding == "base64":
        decode = base64.b64decode
        return (
            decode(raw.key) if raw.key is not None else None,
            decode(raw.value) if raw.value is not None else None,
        )
    return (
        raw.key.encode() if raw.key is not None else None,
        raw.value.encode() if raw.value is not None else None,
    )


def load_letters(
    config: Config,
    *,
    since_ms: int | None = None,
    entity: str | None = None,
    ids: Collection[str] = (),
) -> list[Letter]:
    """Dead letters matching the filters, oldest first (events that fail to parse are left out)."""
    topic = config.topics.dead_letters
    wanted = {str(i) for i in ids}
    cons = consumer(config)
    try:
        if since_ms is not None:
            ranges = time_ranges(cons, topic, since_ms)
        else:
            parts = [TopicPartition(topic, p) for p in partitions(cons, topic)]
            begin, end = cons.beginning_offsets(parts), cons.end_offsets(parts)
            ranges = [OffsetRange(tp.partition, begin[tp], end[tp]) for tp in parts]
        found = []
        for record in read_ranges(cons, topic, ranges):
            try:
                letter = DeadLetter.model_validate_json(record.value or b"")
            except ValidationError:
                continue
            if matches(letter, entity=entity, ids=wanted):
                found.append(Letter(letter, record.partition, record.offset, record.timestamp))
    finally:
        cons.close()
    found.sort(key=lambda entry: (entry.letter.failed_ms, entry.partition, entry.offset))
    return found


def mark_redriven(config: Config, letters: list[Letter]) -> None:
    """Set ``redriven`` on the letters whose redrive copy is on their entity topic."""
    if not letters:
        return
    since = min(entry.letter.failed_ms for entry in letters)
    topics = {entry.letter.source.topic for entry in letters}
    marks: set[str] = set()
    cons = consumer(config)
    try:
        for topic in topics:
            if not cons.partitions_for_topic(topic):
                continue
            for record in read_ranges(cons, topic, time_ranges(cons, topic, since)):
                if (mark := header(record, REDRIVE_HEADER)) is not None:
                    marks.add(mark)
    finally:
        cons.close()
    for entry in letters:
        entry.redriven = entry.mark in marks


@dataclass
class RedriveReport:
    """What a redrive sent, and what it left out and why."""

    sent: list[Letter] = field(default_factory=list)
    skipped: list[tuple[Letter, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the terminal."""
        text = f"redrove {len(self.sent)} dead letters"
        if self.skipped:
            reasons: dict[str, int] = {}
            for _entry, why in self.skipped:
                reasons[why] = reasons.get(why, 0) + 1
            text += "; left out: " + ", ".join(f"{n} {why}" for why, n in reasons.items())
        return text


def redrive(
    config: Config,
    letters: Iterable[Letter],
    *,
    force: bool = False,
    advance: Callable[[int], None] = lambda _n: None,
) -> RedriveReport:
    """Re-publish each letter's original record to its source topic and partition.

    One source record is sent once per run even when several dead letters name it;
    letters already redriven (``mark_redriven``) are left out unless ``force``.
    """
    entity_topics = {e.topic for e in config.entities.values()}
    report = RedriveReport()
    sent_sources: set[tuple[str, int, int]] = set()
    prod = producer(config)
    try:
        for entry in letters:
            advance(1)
            source = entry.letter.source
            origin = (source.topic, source.partition, source.offset)
            if source.topic not in entity_topics:
                report.skipped.append((entry, "not from a configured entity topic"))
            elif origin in sent_sources:
                report.skipped.append((entry, "same source record already sent in this run"))
            elif entry.redriven and not force:
                report.skipped.append((entry, "already redriven (--force to send again)"))
            else:
                key, value = original_bytes(entry.letter.original)
                prod.send(
                    source.topic,
                    key=key,
                    value=value,
                    partition=source.partition,
                    headers=[(REDRIVE_HEADER, entry.mark.encode())],
                )
                sent_sources.add(origin)
                report.sent.append(entry)
        prod.flush()
    finally:
        prod.close()
    return report


def show(entry: Letter) -> dict[str, Any]:
    """A dead letter for reading: its position, and the original value as JSON when it is."""
    data = entry.letter.model_dump(mode="json")
    original = data["original"]
    if entry.letter.original.encoding == "utf-8" and original.get("value"):
        try:
            original["value"] = json.loads(original["value"])
        except ValueError:
            pass
    return {"dead_letter_at": entry.mark, "redriven": entry.redriven, **data}
