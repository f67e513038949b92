"""Entities waiting for a person: parked after failures, or in a conflict (policy manual).

Listing reads the state changelog, so it works without a running worker.
Retry, cancel and resolve are control records sent through the entity's own
topic, keyed like Debezium's key: the worker that owns the entity applies them
in order with its other events. A cancelled event ends as a dead letter.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from kafka import TopicPartition

from cdcsync.operators.common import (
    OffsetRange,
    consumer,
    entity_config,
    partitions,
    producer,
    read_ranges,
)
from cdcsync.schemas.config import Config
from cdcsync.schemas.envelope import Control, encode_key
from cdcsync.schemas.state import SyncState

__all__ = ["ParkedEntity", "list_parked", "request"]


@dataclass(frozen=True)
class ParkedEntity:
    """One entity waiting for a retry, as its state says."""

    entity: str
    entity_id: str
    state: SyncState

    @property
    def row(self) -> tuple[str, ...]:
        due = self.state.retry_at_ms
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(due / 1000)) if due else "-"
        return (
            self.entity,
            self.entity_id,
            str(len(self.state.parked)),
            str(self.state.attempts),
            when,
            (self.state.last_error or "")[:60],
        )


def list_parked(
    config: Config, entity: str | None = None, *, status: str = "retrying"
) -> list[ParkedEntity]:
    """Every entity whose latest state has ``status``, from the state changelogs."""
    names = [entity] if entity else list(config.entities)
    found: list[ParkedEntity] = []
    cons = consumer(config)
    try:
        for name in names:
            entity_config(config, name)
            topic = config.changelog_topic(name)
            tps = [TopicPartition(topic, p) for p in partitions(cons, topic)]
            begin, end = cons.beginning_offsets(tps), cons.end_offsets(tps)
            ranges = [OffsetRange(tp.partition, begin[tp], end[tp]) for tp in tps]
            latest: dict[str, bytes | None] = {}
            for record in read_ranges(cons, topic, ranges):
                latest[json.loads(record.key)] = record.value
            for entity_id, value in sorted(latest.items()):
                if value is None:
                    continue
                state = SyncState.model_validate_json(value)
                if state.status == status and (state.parked or status != "retrying"):
                    found.append(ParkedEntity(name, entity_id, state))
    finally:
        cons.close()
    return found


def request(
    config: Config, entity: str, entity_id: str, command: str, *, take: str | None = None
) -> None:
    """Ask the worker owning ``entity_id`` to retry, cancel, or resolve (``take`` a side)."""
    cfg = entity_config(config, entity)
    control = Control.model_validate({
        "command": command, "take": take, "force": True,
        "requested_ms": int(time.time() * 1000), "by": "cli",
    })  # fmt: skip
    prod = producer(config)
    try:
        prod.send(
            cfg.topic,
            key=encode_key(cfg.key, entity_id, key_type=cfg.key_type),
            value=control.model_dump_json().encode(),
        ).get(timeout=30)
    finally:
        prod.close()
