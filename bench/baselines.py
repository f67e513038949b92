"""The two baselines, run on the same records of the same topic against the same API.

(a) ``concurrent``: a minimal aiokafka consumer -> httpx loop doing the same field
    mapping; each fetched batch grouped by key, keys concurrently, each key in order
    (the ordering cdcsync keeps), offsets committed per batch. No state table, no
    natural-key lookup, no results topic: the ceiling for Python.
(b) ``sequential``: one request per event, one at a time, the Debezium Server HTTP
    sink pattern.

Both keep the external id of each row in a dict, as the simplest possible state.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from cdcsync.bench.broker import BenchKafka
from cdcsync.sinks.delivery.transport import make_transport

__all__ = ["BaselineRun", "run_baseline"]

COLLECTION = "/api/v1/contacts"


@dataclass
class BaselineRun:
    """What one baseline did and when."""

    records: int = 0
    writes: int = 0
    first_ms: float | None = None
    last_ms: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    tombstones: int = 0

    @property
    def seconds(self) -> float:
        if self.first_ms is None or self.last_ms is None:
            return 0.0
        return (self.last_ms - self.first_ms) / 1000


class _Mapper:
    def __init__(self, mapping: dict[str, str], client: httpx.AsyncClient, run: BaselineRun):
        self.mapping = mapping
        self.client = client
        self.run = run
        self.external: dict[bytes, str] = {}

    async def apply(self, key: bytes, value: bytes | None) -> None:
        if value is None:  # tombstone
            self.run.tombstones += 1
            self._done(None)
            return
        event = json.loads(value)
        op, after = event["op"], event.get("after")
        committed = (event.get("source") or {}).get("ts_ms")
        try:
            if op == "d":
                ext = self.external.pop(key, None)
                if ext is not None:
                    await self.client.delete(f"{COLLECTION}/{ext}")
            else:
                payload = {f: after.get(c) for f, c in self.mapping.items()}
                ext = self.external.get(key)
                if ext is None:
                    r = await self.client.post(COLLECTION, json=payload)
                    r.raise_for_status()
                    self.external[key] = r.json()["id"]
                else:
                    r = await self.client.put(f"{COLLECTION}/{ext}", json=payload)
                    r.raise_for_status()
            self.run.writes += 1
        except httpx.HTTPError:
            self.run.errors += 1
        self._done(committed)

    def _done(self, committed: int | None) -> None:
        now = time.time() * 1000
        self.run.records += 1
        self.run.last_ms = now
        if committed is not None:
            self.run.latencies_ms.append(now - committed)


async def _run(
    *,
    kafka: BenchKafka,
    topic: str,
    start: dict[int, int],
    end: dict[int, int],
    api_url: str,
    mapping: dict[str, str],
    concurrent: bool,
    connections: int,
    max_records: int | None,
    max_seconds: float | None,
) -> BaselineRun:
    run = BaselineRun()
    consumer = AIOKafkaConsumer(
        **kafka.aiokafka_settings(),
        group_id=f"cdcsync-bench-baseline-{time.time_ns()}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    # The HTTP stack cdcsync's REST provider uses, so only the sync engine differs.
    client = httpx.AsyncClient(base_url=api_url, timeout=30, transport=make_transport(connections))
    mapper = _Mapper(mapping, client, run)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(end)]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start.get(tp.partition, 0))
        todo = sum(end[p] - start.get(p, 0) for p in end)
        if max_records is not None:
            todo = min(todo, max_records)
        await _consume(consumer, mapper, end=end, todo=todo, concurrent=concurrent,
                       max_seconds=max_seconds)  # fmt: skip
    finally:
        await client.aclose()
        await consumer.stop()
    return run


async def _consume(
    consumer: AIOKafkaConsumer,
    mapper: _Mapper,
    *,
    end: dict[int, int],
    todo: int,
    concurrent: bool,
    max_seconds: float | None,
) -> None:
    """Fetch, apply and commit batches until ``todo`` records are done, or ``max_seconds``
    after the first one (the clock starts with the first record, as cdcsync's does).
    """
    run = mapper.run
    deadline = None
    while run.records < todo:
        batch = await consumer.getmany(timeout_ms=100, max_records=500)
        records = [r for tp, rs in batch.items() for r in rs if r.offset < end[tp.partition]][
            : todo - run.records
        ]
        if not records:
            continue
        if run.first_ms is None:
            run.first_ms = time.time() * 1000
            deadline = None if max_seconds is None else time.monotonic() + max_seconds
        if concurrent:
            await _apply_by_key(mapper, records)
        else:
            for r in records:
                await mapper.apply(r.key, r.value)
                if deadline is not None and time.monotonic() > deadline:
                    break
        await consumer.commit()
        if deadline is not None and time.monotonic() > deadline:
            break


async def _apply_by_key(mapper: _Mapper, records: list[Any]) -> None:
    """Baseline (a): a batch grouped by key, keys concurrently, each key's records in order."""
    groups: dict[bytes, list[Any]] = {}
    for r in records:
        groups.setdefault(r.key, []).append(r)

    async def one_key(rs: list[Any]) -> None:
        for r in rs:
            await mapper.apply(r.key, r.value)

    await asyncio.gather(*(one_key(g) for g in groups.values()))


def run_baseline(**kw: Any) -> BaselineRun:
    """Run one baseline to the end of the range (or ``max_records``/``max_seconds``)."""
    return asyncio.run(_run(**kw))
