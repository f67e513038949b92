"""Poll and diff of many external records with the real Poller, RestSink and Kafka producer."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from cdcsync.agents.poller import Poller
from cdcsync.agents.sync import EntitySync
from cdcsync.bench.broker import BenchKafka
from cdcsync.mappers.loader import build_mapper
from cdcsync.sinks.registry import build_sink
from cdcsync.stack.kafka import TopicSpec
from cdcsync.streams.config import load_config

__all__ = ["POLL_TOPIC", "bench_poll"]

POLL_TOPIC = "cdcsync.bench.poll"


class _Topic:
    """The part of a Faust topic the poller uses, over a plain aiokafka producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send(self, *, key: bytes, value: bytes) -> Any:
        return await self.producer.send(POLL_TOPIC, key=key, value=value)


async def _seed(api_url: str, n: int) -> list[str]:
    """``n`` records in the API (latency switched off while seeding); their ids."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        old = (await client.get("/_admin/settings")).json()["latency_ms"]
        await client.put("/_admin/settings", json={"latency_ms": 0})
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> str:
            async with sem:
                body = {"firstName": f"P{i}", "lastName": "Poll", "email": f"poll{i}@example.org",
                        "phone": str(i)}  # fmt: skip
                r = await client.post("/api/v1/contacts", json=body)
                return str(r.json()["id"])

        ids = await asyncio.gather(*(one(i) for i in range(n)))
        await client.put("/_admin/settings", json={"latency_ms": old})
    return list(ids)


async def _touch(api_url: str, ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        old = (await client.get("/_admin/settings")).json()["latency_ms"]
        await client.put("/_admin/settings", json={"latency_ms": 0})
        for i in ids:
            body = {"firstName": "Changed", "lastName": "Poll", "email": f"c{i}@example.org"}
            await client.put(f"/api/v1/contacts/{i}", json=body)
        await client.put("/_admin/settings", json={"latency_ms": old})


async def _bench(
    kafka: BenchKafka, config_path: str, api_url: str, n: int, page_sizes: list[int]
) -> dict[str, Any]:
    config = load_config(config_path)
    entity = config.entities["contact"]
    ids = await _seed(api_url, n)
    producer = AIOKafkaProducer(**kafka.aiokafka_settings(), linger_ms=5)
    await producer.start()
    out: dict[str, Any] = {"records": n}
    try:
        for page_size in page_sizes:
            settings = {**entity.target.settings, "page_size": page_size}
            mapper = build_mapper(entity.mapping, entity.mapper, entity.mapper_options, where="x")
            sync = EntitySync(
                entity="contact",
                config=entity,
                mapper=mapper,
                sink_factory=lambda s=settings: build_sink("rest", s),  # type: ignore[misc]
                table={},
                refs={},
                topics=None,  # type: ignore[arg-type]
            )
            refs = {eid: f'{{"id":{i}}}' for i, eid in enumerate(ids)}
            poller = Poller(sync.entity, sync.applier, _Topic(producer), refs)  # type: ignore[arg-type]
            first = await poller.poll_once()  # everything is new: 10k published
            await producer.flush()
            steady = await poller.poll_once()  # nothing changed: list and diff only
            changed = random.Random(3).sample(ids, max(1, n // 100))
            await _touch(api_url, changed)
            t0 = time.monotonic()
            diff = await poller.poll_once()  # 1% changed
            await producer.flush()
            diff_s = time.monotonic() - t0
            await sync.sink.aclose()
            out[f"page_size_{page_size}"] = {
                "first_pass_s": round(first.seconds, 3),
                "first_published": first.published,
                "unchanged_pass_s": round(steady.seconds, 3),
                "changed_pass_s": round(diff_s, 3),
                "changed_published": diff.published,
                "requests_per_pass": -(-n // page_size),
            }
    finally:
        await producer.stop()
    return out


def bench_poll(
    kafka: BenchKafka, config_path: str, api_url: str, n: int, page_sizes: list[int]
) -> dict[str, Any]:
    """Seed ``n`` records, then time full passes of the Poller (first, unchanged, 1% changed)."""
    kafka.ensure_topics([TopicSpec(POLL_TOPIC, 1)])
    return asyncio.run(_bench(kafka, config_path, api_url, n, page_sizes))
