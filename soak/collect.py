"""What the soak reads back: the entity topic's records, the results and dead letters, the
external objects, the source rows, and the write counters of both sides."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
import psycopg
from kafka import TopicPartition

from cdcsync.bench.broker import BenchKafka
from cdcsync.demo.harness import end_offsets
from cdcsync.soak.checks import MAPPING, Outcome, Position
from cdcsync.soak.setup import TABLE, SoakNames
from cdcsync.stack.settings import StackSettings

__all__ = [
    "TopicReader",
    "api_objects",
    "api_stats",
    "api_writes",
    "changed_rows",
    "row_versions",
    "source_rows",
]

CONTACTS = "/api/v1/contacts"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class TopicReader:
    """Reads the entity topic and the results and dead-letter topics from their start, a
    little more at each :meth:`catch_up`."""

    def __init__(self, kafka: BenchKafka, names: SoakNames) -> None:
        self.names = names
        self.consumer = kafka.consumer(group_id=None, enable_auto_commit=False,
                                       max_partition_fetch_bytes=8 * 1024 * 1024)  # fmt: skip
        topics = [names.entity_topic, names.results, names.dead_letters]
        self.parts = [TopicPartition(t, p) for t in topics
                      for p in sorted(self.consumer.partitions_for_topic(t) or ())]  # fmt: skip
        self.consumer.assign(self.parts)
        # Our own positions: the topics are the run's, from offset 0. (kafka-python's lazy
        # seek_to_beginning() can leave position() waiting forever.)
        self.positions = dict.fromkeys(self.parts, 0)
        for tp in self.parts:
            self.consumer.seek(tp, 0)
        self.records: set[Position] = set()
        self.outcomes: list[Outcome] = []

    def catch_up(self) -> None:
        """Read up to the topics' ends as they are now."""
        ends = end_offsets(self.consumer, self.parts)
        behind = {tp for tp in self.parts if self.positions[tp] < ends[tp]}
        while behind:
            for tp, batch in self.consumer.poll(timeout_ms=500, max_records=10000).items():
                for r in batch:
                    self._take(tp.topic, tp.partition, r.offset, r.value)
                    self.positions[tp] = r.offset + 1
            behind = {tp for tp in behind if self.positions[tp] < ends[tp]}

    def _take(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        if topic == self.names.entity_topic:
            # A retry the workers' timer sent is no change: it redrives parked ones, whose
            # outcomes name their own offsets.
            if value is None or b'"origin":"control"' not in value:
                self.records.add((partition, offset))
            return
        e = json.loads(value or b"{}")
        src = e["source"]
        if src["topic"] != self.names.entity_topic:
            return
        if e["kind"] == "result":
            action, detail = e["action"], e["reason"]
        else:
            action, detail = e["reason"], f"{e['error_type']}: {e['error']}"
        pos = (src["partition"], src["offset"])
        self.outcomes.append(Outcome(e["kind"], pos, e.get("entity_id"), action, detail))

    def pending(self) -> set[Position]:
        """Records without an outcome so far."""
        return self.records - {o.position for o in self.outcomes}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.close()


def api_objects(api_url: str) -> list[dict[str, Any]]:
    """Every external contact, through the API's paging (faults cleared first)."""
    items: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=api_url, timeout=60) as client:
        while True:
            params: dict[str, Any] = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
            page = client.get(CONTACTS, params=params).raise_for_status().json()
            items += page["items"]
            cursor = page.get("next")
            if not cursor:
                return items


def api_writes(api_url: str) -> int:
    """Requests the API has taken that write (its own counter)."""
    stats = httpx.get(f"{api_url}/_admin/stats", timeout=30).raise_for_status().json()
    by_method = stats["requests"]["by_method"]
    return sum(int(by_method.get(m, 0)) for m in WRITE_METHODS)


def api_stats(api_url: str) -> dict[str, Any]:
    """The API's counters (requests by status, faults fired)."""
    stats: dict[str, Any] = httpx.get(f"{api_url}/_admin/stats", timeout=30).json()
    return stats


def source_rows(stack: StackSettings) -> dict[str, dict[str, Any]]:
    """Every row by email, as the external fields the mapping gives it, with its id."""
    columns = ", ".join(MAPPING.values())
    with psycopg.connect(stack.pg_dsn()) as conn:
        rows = conn.execute(f"SELECT id, {columns} FROM public.{TABLE}").fetchall()
    out = {}
    for entity_id, *values in rows:
        fields = dict(zip(MAPPING, values, strict=True))
        out[str(fields["email"])] = fields | {"id": int(entity_id)}
    return out


def row_versions(stack: StackSettings) -> dict[int, str]:
    """Each row's ``xmin``: any write to a row (or its insert or delete) changes this map."""
    with psycopg.connect(stack.pg_dsn()) as conn:
        rows = conn.execute(f"SELECT id, xmin::text FROM public.{TABLE}").fetchall()
    return {int(i): str(x) for i, x in rows}


def changed_rows(before: dict[int, str], after: dict[int, str]) -> int:
    """Rows inserted, updated or deleted between two :func:`row_versions`."""
    return sum(1 for i in before.keys() | after.keys() if before.get(i) != after.get(i))
