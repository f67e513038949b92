"""One entity's sync state, read from Kafka: works without a running worker.

The state table ``state_<entity>`` is backed by a compacted changelog topic
(key = the entity id as a JSON string, value = ``SyncState`` JSON). The agent
writes state to the changelog partition of the record it processed, which is
the partition of Debezium's key, so that partition is read first; if the key
is not there, every partition is read.

The last result and dead letter come from the tail of the results and
dead-letter topics: both are keyed by the entity id, so only its partition is
read, and only its last ``window`` records (10,000 by default). An entity
whose last event is older than that shows none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from cdcsync.operators.common import (
    OffsetRange,
    consumer,
    entity_config,
    key_partition,
    partitions,
    read_ranges,
    tail_ranges,
)
from cdcsync.schemas.config import Config
from cdcsync.schemas.envelope import encode_key
from cdcsync.schemas.events import DeadLetter, SyncResult
from cdcsync.schemas.state import SyncState

__all__ = ["DEFAULT_WINDOW", "EntityStatus", "entity_status", "last_event", "read_state"]

#: Records read from the end of each results / dead-letter partition.
DEFAULT_WINDOW = 10_000


@dataclass
class EntityStatus:
    """What ``cdcsync status`` and ``/state/{entity}/{id}`` show."""

    entity: str
    entity_id: str
    state: SyncState | None
    state_at: str | None
    last_result: SyncResult | None
    last_dead_letter: DeadLetter | None

    def to_json(self) -> dict[str, Any]:
        """The JSON the web endpoint returns and ``--json`` prints."""
        link = None
        if self.last_result and self.last_result.external:
            link = self.last_result.external.link
        return {
            "entity": self.entity,
            "entity_id": self.entity_id,
            "known": self.state is not None,
            "state": self.state.model_dump(mode="json") if self.state else None,
            "state_at": self.state_at,
            "link": link,
            "last_result": self.last_result.model_dump(mode="json") if self.last_result else None,
            "last_dead_letter": (
                self.last_dead_letter.model_dump(mode="json") if self.last_dead_letter else None
            ),
        }


def _latest_for_key(
    cons: KafkaConsumer, topic: str, key: bytes, parts: list[int]
) -> tuple[bytes | None, str] | None:
    tps = [TopicPartition(topic, p) for p in parts]
    begin, end = cons.beginning_offsets(tps), cons.end_offsets(tps)
    ranges = [OffsetRange(tp.partition, begin[tp], end[tp]) for tp in tps]
    latest: tuple[bytes | None, str] | None = None
    for record in read_ranges(cons, topic, ranges):
        if record.key == key:
            latest = (record.value, f"{topic}[{record.partition}]@{record.offset}")
    return latest


def read_state(config: Config, entity: str, entity_id: str) -> tuple[SyncState | None, str | None]:
    """The entity's latest state from the changelog, and where it was read."""
    cfg = entity_config(config, entity)
    topic = config.changelog_topic(entity)
    key = json.dumps(entity_id).encode()
    cons = consumer(config)
    try:
        all_parts = partitions(cons, topic)
        first = key_partition(encode_key(cfg.key, entity_id, key_type=cfg.key_type), len(all_parts))
        found = _latest_for_key(cons, topic, key, [first])
        if found is None:
            found = _latest_for_key(cons, topic, key, [p for p in all_parts if p != first])
    finally:
        cons.close()
    if found is None or found[0] is None:  # never written, or deleted (tombstone)
        return None, found[1] if found else None
    try:
        return SyncState.model_validate_json(found[0]), found[1]
    except ValidationError:
        return None, found[1]


def last_event(
    config: Config,
    topic: str,
    model: type[SyncResult] | type[DeadLetter],
    entity: str,
    entity_id: str,
    *,
    window: int = DEFAULT_WINDOW,
) -> Any:
    """The newest ``model`` event for the entity id in the tail of ``topic``, or ``None``."""
    cons = consumer(config)
    try:
        count = len(partitions(cons, topic))
        part = key_partition(entity_id.encode(), count)
        latest = None
        for record in read_ranges(cons, topic, tail_ranges(cons, topic, window, only=[part])):
            if record.key != entity_id.encode():
                continue
            try:
                event = model.model_validate_json(record.value or b"")
            except ValidationError:
                continue
            if event.entity == entity:
                latest = event
    finally:
        cons.close()
    return latest


def entity_status(
    config: Config, entity: str, entity_id: str, *, window: int = DEFAULT_WINDOW
) -> EntityStatus:
    """State, last result and last dead letter of one entity id."""
    state, at = read_state(config, entity, entity_id)
    result = last_event(config, config.topics.results, SyncResult, entity, entity_id, window=window)
    letter = last_event(
        config, config.topics.dead_letters, DeadLetter, entity, entity_id, window=window
    )
    return EntityStatus(entity, entity_id, state, at, result, letter)
