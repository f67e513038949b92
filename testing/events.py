"""Fake Faust events and topics: drive an agent without Kafka, see what it sent.

``Feed`` writes Debezium records as the connector would (JsonConverter, schemas
off) at increasing offsets of one partition; ``Partition`` is that partition
and also records what the agent sends, so the poller's records come back in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cdcsync.schemas.envelope import encode_key

__all__ = ["Event", "Feed", "Message", "Partition", "Topic", "Topics", "debezium_value"]


@dataclass
class Message:
    """Where a record was read: what an agent reads of ``event.message``."""

    topic: str
    partition: int
    offset: int


@dataclass
class Event:
    """A consumed record as a Faust agent sees it."""

    key: bytes | None
    value: bytes | None
    message: Message
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Topic:
    """A topic that keeps the JSON values sent to it."""

    sent: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, *, key: bytes, value: bytes) -> None:
        self.sent.append(json.loads(value))


@dataclass
class Topics:
    """Every topic an agent writes, each recording what it got (``agents.emit.Topics``)."""

    results: Any = field(default_factory=Topic)
    dead_letters: Any = field(default_factory=Topic)
    conflicts: Any = field(default_factory=Topic)
    notifications: Any = field(default_factory=Topic)
    audit: Any = field(default_factory=Topic)
    entities: dict[str, Any] = field(default_factory=dict)


def debezium_value(op: str, before: Any, after: Any) -> bytes:
    """A Debezium change value for ``op`` (c, u, d, r)."""
    value = {"op": op, "before": before, "after": after, "source": {"ts_ms": 1}}
    return json.dumps(value).encode()


class Feed:
    """Debezium records of one table at increasing offsets of partition 0."""

    def __init__(self, topic: str = "cdcsync.contact", *, key_field: str = "id") -> None:
        self.topic = topic
        self.key_field = key_field
        self.offset = 0

    def __call__(
        self,
        op: str | None,
        row: dict[str, Any] | None = None,
        *,
        key: bytes | None = None,
        value: bytes | None = None,
    ) -> Event:
        """The next record: ``op`` None with no ``value`` is a tombstone."""
        self.offset += 1
        if value is None and op is not None:
            value = debezium_value(op, row if op == "d" else None, None if op == "d" else row)
        entity_id = (row or {}).get(self.key_field, 1)
        key = key if key is not None else encode_key(self.key_field, entity_id)
        return Event(key, value, Message(self.topic, 0, self.offset))


@dataclass
class Partition:
    """One partition of an entity topic that also records every other event sent.

    Records the poller sends (``origin: external``) are appended to the partition
    to be consumed; results, dead letters and the rest go to ``sent``.
    """

    topic: str = "t"
    events: list[Event] = field(default_factory=list)
    offset: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)

    def append(self, key: bytes, value: bytes | None) -> None:
        self.offset += 1
        self.events.append(Event(key, value, Message(self.topic, 0, self.offset)))

    async def send(self, *, key: bytes, value: bytes) -> None:
        if value.startswith(b'{"origin":"external"'):  # the poller, into the entity topic
            self.append(key, value)
        else:
            self.sent.append(json.loads(value))
