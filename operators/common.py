"""What the operator tools share: their error, Kafka clients, keys, headers, tables.

The tools are short-lived CLI processes, so they use kafka-python's blocking
clients (as the project does for all admin work) rather than the worker's
aiokafka ones; nothing here needs a running worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, NoBrokersAvailable
from kafka.partitioner.default import murmur2

from cdcsync.errors import CdcsyncError, ConfigurationError
from cdcsync.operators.kafka_clients import kafka_python_settings
from cdcsync.schemas.config import Config, EntityConfig

__all__ = [
    "REDRIVE_HEADER",
    "TRIGGER_HEADER",
    "OffsetRange",
    "OperatorError",
    "bootstrap_servers",
    "consumer",
    "entity_config",
    "header",
    "key_partition",
    "partitions",
    "producer",
    "read_ranges",
    "render_table",
    "tail_ranges",
    "time_ranges",
]

#: Header on a record re-published by ``cdcsync replay``: ``<topic>/<partition>/<offset>``
#: of the record it copies.
#: Header on a record re-published by ``cdcsync dlq redrive``: ``<partition>/<offset>`` of
#: the dead letter it came from (in the dead-letter topic).
REDRIVE_HEADER = "cdcsync-redrive"
#: Header on a record published by ``cdcsync trigger`` or a webhook: who asked.
TRIGGER_HEADER = "cdcsync-trigger"


class OperatorError(CdcsyncError):
    """An operator command cannot do what was asked; the message says what to do next."""


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """Records ``start`` (inclusive) to ``end`` (exclusive) of one partition."""

    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        """How many offsets the range spans (compaction or transactions may leave gaps)."""
        return max(self.end - self.start, 0)


def entity_config(config: Config, entity: str) -> EntityConfig:
    """The entity's configuration, or an error listing the configured ones."""
    try:
        return config.entities[entity]
    except KeyError:
        known = ", ".join(sorted(config.entities)) or "none"
        raise ConfigurationError(
            f"no entity {entity!r} in the configuration (known: {known})"
        ) from None


def bootstrap_servers(config: Config) -> str:
    """kafka-python's bootstrap list from Faust's broker URL(s) (``kafka://h:p;h2:p2``)."""
    hosts = []
    for part in config.app.broker.replace(",", ";").split(";"):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            hosts.append(part.rstrip("/"))
    return ",".join(hosts)


def _unreachable(config: Config, exc: Exception) -> OperatorError:
    return OperatorError(
        f"cannot reach Kafka at {bootstrap_servers(config)} ({exc}); "
        "start the stack with `cdcsync local up` or fix app.broker in the configuration"
    )


def consumer(config: Config) -> KafkaConsumer:
    """A group-less consumer for reading topics by offset (nothing is committed)."""
    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap_servers(config),
            group_id=None,
            enable_auto_commit=False,
            consumer_timeout_ms=1000,
            **kafka_python_settings(config.app.security),
        )
    except NoBrokersAvailable as exc:
        raise _unreachable(config, exc) from exc


def producer(config: Config) -> KafkaProducer:
    """A producer that waits for every replica, as the worker's does (``acks=-1``)."""
    try:
        return KafkaProducer(
            bootstrap_servers=bootstrap_servers(config),
            acks="all",
            **kafka_python_settings(config.app.security),
        )
    except NoBrokersAvailable as exc:
        raise _unreachable(config, exc) from exc


def partitions(cons: KafkaConsumer, topic: str) -> list[int]:
    """The topic's partitions, or an error naming the topic when it does not exist."""
    found = cons.partitions_for_topic(topic)
    if not found:
        raise OperatorError(
            f"topic {topic!r} does not exist; `cdcsync local up` creates the configured topics"
        )
    return sorted(found)


def key_partition(key: bytes, count: int) -> int:
    """The partition Kafka's default partitioner (Java and kafka-python alike) picks."""
    return (murmur2(key) & 0x7FFFFFFF) % count


def header(record: ConsumerRecord, name: str) -> str | None:
    """A record header as text, or ``None``."""
    for key, value in record.headers or ():
        if key == name and value is not None:
            return bytes(value).decode("utf-8", "replace")
    return None


def read_ranges(
    cons: KafkaConsumer, topic: str, ranges: Sequence[OffsetRange], *, poll_ms: int = 500
) -> Iterator[ConsumerRecord]:
    """Yield every record of ``ranges`` (partition by partition interleaved as Kafka
    returns them; in offset order within a partition), then stop.
    """
    todo = {TopicPartition(topic, r.partition): r for r in ranges if r.size > 0}
    if not todo:
        return
    cons.assign(list(todo))
    for tp, r in todo.items():
        cons.seek(tp, r.start)
    idle = 0
    while todo:
        try:
            batch = cons.poll(timeout_ms=poll_ms)
        except KafkaError as exc:
            raise OperatorError(f"reading {topic} failed: {exc}") from exc
        idle = 0 if batch else idle + 1
        for tp, records in batch.items():
            wanted = todo.get(tp)
            if wanted is None:
                continue
            for record in records:
                if record.offset >= wanted.end:
                    break
                yield record
        for tp in list(todo):
            # Compacted topics and transaction markers leave gaps: go by position.
            if cons.position(tp) >= todo[tp].end:
                del todo[tp]
                cons.pause(tp)
        if idle > 20 and todo:
            missing = ", ".join(f"{tp.partition}@{cons.position(tp)}" for tp in todo)
            raise OperatorError(f"reading {topic} stalled at {missing}; is Kafka healthy?")


def tail_ranges(
    cons: KafkaConsumer, topic: str, window: int, *, only: Iterable[int] | None = None
) -> list[OffsetRange]:
    """The last ``window`` offsets of each partition (or of the ``only`` ones)."""
    parts = [
        TopicPartition(topic, p) for p in (only if only is not None else partitions(cons, topic))
    ]
    begin, end = cons.beginning_offsets(parts), cons.end_offsets(parts)
    return [OffsetRange(tp.partition, max(begin[tp], end[tp] - window), end[tp]) for tp in parts]


def time_ranges(
    cons: KafkaConsumer, topic: str, since_ms: int, until_ms: int | None = None
) -> list[OffsetRange]:
    """Per partition, the offsets of records timestamped in ``[since_ms, until_ms)``.

    The end is the partition's end *now* when ``until_ms`` is not given, so records
    written while the caller works (a replay's own copies) are never included.
    """
    parts = [TopicPartition(topic, p) for p in partitions(cons, topic)]
    end = cons.end_offsets(parts)
    starts = cons.offsets_for_times({tp: since_ms for tp in parts})
    stops = cons.offsets_for_times({tp: until_ms for tp in parts}) if until_ms is not None else {}
    ranges = []
    for tp in parts:
        start = starts.get(tp)
        if start is None:  # nothing at or after since_ms
            continue
        stop = stops.get(tp) if until_ms is not None else None
        ranges.append(OffsetRange(tp.partition, start.offset, stop.offset if stop else end[tp]))
    return ranges


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain aligned text table (no colours: output is often piped)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
