"""The operator page's problems list with 100k entities and 10k problems in the local table.

``python -m cdcsync.bench.problems_page [--entities N] [--problems M] [--runs R]``

Builds the worker's app (``create_app``) with one entity whose Faust state
table holds N states, M of them problems (retrying, failed, conflicts, loop
suspects) plus 500 dead letters in the page's dead-letter tail, then times
GET ``/ui/problems`` over real HTTP (aiohttp's test server on 127.0.0.1,
bearer token through the guard): the first page, a filtered search, and the
last page. Same-run baselines: ``GET /healthz`` (the HTTP and guard cost) and
one bare pass over the table's values (the least any scan costs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest import mock

from aiohttp.test_utils import TestClient, TestServer

from cdcsync.operators.dlq import Letter
from cdcsync.schemas.config import Config
from cdcsync.schemas.events import DeadLetter, RawRecord, SourcePosition
from cdcsync.streams import pages
from cdcsync.streams.app import create_app
from cdcsync.streams.pages.sources import PageSources
from cdcsync.streams.pages.tails import Timeline

__all__ = ["main", "populate"]

TOKEN = "bench-operator-token-0123456789"
_STATUSES = ("retrying", "permanently_failed", "conflict", "retrying")


def populate(table: object, entities: int, problems: int) -> None:
    """``entities`` states in ``table`` (a dict or a Faust table's store), ``problems`` failing."""
    data = getattr(table, "data", table)
    step = max(entities // max(problems, 1), 1)
    now = int(time.time() * 1000)
    for i in range(entities):
        value: dict[str, object] = {"status": "synced", "external_id": f"x-{i}", "updated_ms": now}
        if i % step == 0 and i // step < problems:
            status = _STATUSES[(i // step) % 4]
            parked = [{"key": f'{{"id":{i}}}', "value": '{"email":"a@b"}', "topic": "t.contact",
                       "partition": 0, "offset": i, "received_ms": now - i}]  # fmt: skip
            value |= {"status": status, "last_error": f"HTTP 503 for {i}", "attempts": 3,
                      "updated_ms": now - i, "retry_at_ms": now + 60_000,
                      "parked": parked if status == "retrying" else [],
                      "hold": "loop_suspected" if i % (8 * step) == 0 else None}  # fmt: skip
        data[str(i)] = value  # type: ignore[index]


def _letters(count: int) -> list[Letter]:
    position = SourcePosition(topic="t.contact", partition=0, offset=1)
    return [
        Letter(DeadLetter(entity="contact", entity_id=str(i), reason="sink_permanent",
                          error_type="SinkPermanentError", error="HTTP 422", source=position,
                          original=RawRecord(key=None, value=None), failed_ms=1_000 + i),
               0, i, 0)
        for i in range(count)
    ]  # fmt: skip


def _sources(letters: list[Letter]) -> PageSources:
    """Sources that serve ``letters`` and send nothing (the list never sends)."""

    async def nothing(*_args: object) -> Any:
        raise AssertionError("the bench sends nothing")

    async def dead_letters() -> list[Letter]:
        return letters

    async def timeline(entity: str, entity_id: str) -> Timeline:
        return Timeline()

    return PageSources(send_control=nothing, sync_now=nothing, dead_letters=dead_letters,
                       redrive=nothing, timeline=timeline)  # fmt: skip


async def _time(call: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _line(name: str, times: list[float]) -> str:
    p95 = sorted(times)[max(int(len(times) * 0.95) - 1, 0)]
    return f"{name:<44} median {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms"


async def bench(entities: int, problems: int, runs: int) -> dict[str, list[float]]:
    """Time the list over HTTP and its baselines; returns the samples in ms by name."""
    os.environ["CDCSYNC_BENCH_TOKEN"] = TOKEN
    web = {"tokens": {"bench": {"role": "operator", "env": "CDCSYNC_BENCH_TOKEN"}}}
    entity = {"topic": "t.contact", "mapping": {"email": "email"},
              "target": {"provider": "rest", "settings": {"base_url": "http://127.0.0.1:1",
                         "collection_path": "/c", "object_type": "contact"}}}  # fmt: skip
    config = Config.model_validate({
        "app": {"datadir": tempfile.mkdtemp(), "web": web}, "entities": {"contact": entity},
    })  # fmt: skip
    sources = _sources(_letters(500))
    with mock.patch.object(pages, "make_sources", lambda *a: sources):
        app = create_app(config, config_path=Path("bench.yaml"))
    web_server: Any = app.web
    web_server.init_server()
    table: Any = app.tables["state_contact"]
    populate(table, entities, problems)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    samples: dict[str, list[float]] = {}
    async with TestClient(TestServer(web_server.web_app)) as client:

        async def get(path: str) -> None:
            answer = await client.get(path, headers=headers)
            assert answer.status == 200, await answer.text()
            await answer.read()

        last = -(-(problems + 500) // 50)
        await get("/ui/problems")  # warm up
        samples["baseline: GET /healthz"] = await _time(lambda: get("/healthz"), runs)

        async def scan() -> None:
            sum(v.get("status") != "synced" for v in table.data.values())

        samples["baseline: one pass over the table"] = await _time(scan, runs)
        samples["GET /ui/problems (page 1)"] = await _time(lambda: get("/ui/problems"), runs)
        query = "/ui/problems?kind=transient&q=99&since=-1h"
        samples["GET /ui/problems?kind&q&since"] = await _time(lambda: get(query), runs)
        samples[f"GET /ui/problems?page={last} (last)"] = await _time(
            lambda: get(f"/ui/problems?page={last}"), runs
        )
        samples["GET /ui (overview)"] = await _time(lambda: get("/ui"), runs)
    return samples


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--problems", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    samples = asyncio.run(bench(args.entities, args.problems, args.runs))
    print(f"problems list: {args.entities} entities, {args.problems} problems + 500 dead letters")
    for name, times in samples.items():
        print(_line(name, times))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
