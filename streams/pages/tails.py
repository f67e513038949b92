"""What the page reads from Kafka: the tails of the dead-letter, results, conflict, audit topics.

Each read is capped (``window`` records per partition read), runs in a thread
and is never per row of a list: the dead-letter tail is read once and kept
for a few seconds (:class:`LetterTail`), one entity's timeline reads only the
partition of its key in each topic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from cdcsync.operators.common import consumer, key_partition, partitions, read_ranges, tail_ranges
from cdcsync.operators.dlq import Letter
from cdcsync.schemas.config import Config
from cdcsync.schemas.events import ConflictEvent, DeadLetter, OperatorAction, SyncResult

__all__ = [
    "LETTER_WINDOW",
    "TIMELINE_WINDOW",
    "LetterTail",
    "Timeline",
    "read_letters",
    "read_timeline",
]

#: Dead letters read from the end of each dead-letter partition.
LETTER_WINDOW = 2_000
#: Records read from the end of the entity's partition of each topic, for its timeline.
TIMELINE_WINDOW = 5_000


@dataclass
class Timeline:
    """One entity's recent events, oldest first, each list capped."""

    results: list[SyncResult] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    conflicts: list[ConflictEvent] = field(default_factory=list)
    actions: list[OperatorAction] = field(default_factory=list)


def read_letters(config: Config, window: int = LETTER_WINDOW) -> list[Letter]:
    """The last ``window`` dead letters of each partition, oldest first."""
    topic = config.topics.dead_letters
    found: list[Letter] = []
    cons = consumer(config)
    try:
        for record in read_ranges(cons, topic, tail_ranges(cons, topic, window)):
            try:
                letter = DeadLetter.model_validate_json(record.value or b"")
            except ValidationError:
                continue
            found.append(Letter(letter, record.partition, record.offset, record.timestamp))
    finally:
        cons.close()
    found.sort(key=lambda entry: (entry.letter.failed_ms, entry.partition, entry.offset))
    return found


def read_timeline(
    config: Config, entity: str, entity_id: str, *, window: int = TIMELINE_WINDOW, cap: int = 50
) -> Timeline:
    """The entity's results, dead letters, conflicts and operator actions (last ``cap`` each)."""
    key = entity_id.encode()
    topics = config.topics
    timeline = Timeline()
    cons = consumer(config)
    try:
        for topic, model in (
            (topics.results, SyncResult),
            (topics.dead_letters, DeadLetter),
            (topics.conflicts, ConflictEvent),
            (topics.audit, OperatorAction),
        ):
            if not cons.partitions_for_topic(topic):
                continue
            part = key_partition(key, len(partitions(cons, topic)))
            for record in read_ranges(cons, topic, tail_ranges(cons, topic, window, only=[part])):
                if record.key != key:
                    continue
                _add(timeline, model, record, entity, entity_id)
    finally:
        cons.close()
    for name in ("results", "letters", "conflicts", "actions"):
        setattr(timeline, name, getattr(timeline, name)[-cap:])
    return timeline


def _add(timeline: Timeline, model: type[BaseModel], record: object, entity: str, eid: str) -> None:
    """Add one record to the timeline when it is an event of this entity."""
    value = getattr(record, "value", None) or b""
    try:
        event = model.model_validate_json(value)
    except ValidationError:
        return  # the audit topic holds outgoing-call records too: not operator actions
    match event:
        case SyncResult() if event.entity == entity:
            timeline.results.append(event)
        case DeadLetter() if event.entity == entity:
            position = (getattr(record, "partition", 0), getattr(record, "offset", 0))
            timeline.letters.append(Letter(event, *position, getattr(record, "timestamp", 0)))
        case ConflictEvent() if event.entity == entity:
            timeline.conflicts.append(event)
        case OperatorAction() if event.entity in (entity, None) and eid in event.entity_ids:
            timeline.actions.append(event)


class LetterTail:
    """The dead-letter tail, read at most once every ``ttl_s`` whatever the request rate."""

    def __init__(
        self,
        read: Callable[[], list[Letter]],
        *,
        ttl_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.ttl_s = ttl_s
        self.clock = clock
        self._letters: list[Letter] = []
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def letters(self) -> list[Letter]:
        """The cached letters, read again in a thread when older than ``ttl_s``."""
        async with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl_s:
                self._letters = await asyncio.to_thread(self.read)
                self._read_at = now
            return self._letters

    def forget(self) -> None:
        """Read again on the next call (after a redrive)."""
        self._read_at = None
