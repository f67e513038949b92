"""The demo: bring everything up, change rows in PostgreSQL, watch them reach the API."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from kafka import KafkaProducer

from cdcsync.demo.harness import TopicWatcher, WorkerProcess
from cdcsync.refapi.server import run_in_thread
from cdcsync.schemas.config import Config, default_config_path
from cdcsync.stack.settings import StackSettings

__all__ = ["run_demo"]

TOKEN_ENV = "CDCSYNC_DEMO_TOKEN"


def _changes(dsn: str, tag: str, rows: int, say: Callable[[str], None]) -> list[str]:
    """Insert, update (mapped and unmapped columns) and delete demo contacts; return their ids."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = []
        for i in range(rows):
            cur = conn.execute(
                "INSERT INTO contact (first_name, last_name, email, phone) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (f"Ada{i}", "Lovelace", f"ada{i}.{tag}@example.org", f"+44 20 7946 {i:04d}"),
            )
            row = cur.fetchone()
            assert row is not None
            ids.append(str(row[0]))
        say(f"  inserted {rows} contacts (ids {ids[0]}..{ids[-1]})")
        conn.execute("UPDATE contact SET last_name = 'Byron' WHERE id = %s", (ids[0],))
        say(f"  updated a mapped column of {ids[0]} (last_name)")
        conn.execute("UPDATE contact SET notes = 'met at the demo' WHERE id = %s", (ids[1],))
        say(f"  updated an unmapped column of {ids[1]} (notes: no API call expected)")
        conn.execute("DELETE FROM contact WHERE id = %s", (ids[-1],))
        say(f"  deleted {ids[-1]}")
    return ids


async def run_demo(
    config: Config, *, rows: int, keep_running: bool, say: Callable[[str], None] = print
) -> None:
    """Run the demo end to end and print a summary."""
    from cdcsync.streams.commands import stack_up

    rows = max(rows, 3)
    stack = StackSettings()
    say("1/5 local stack (PostgreSQL, Kafka, Kafka Connect + Debezium)")
    await asyncio.to_thread(stack_up, config, progress=say)

    target = config.entities["contact"].target.settings
    base_url = target["base_url"]
    port = int(httpx.URL(base_url).port or 80)
    os.environ.setdefault(TOKEN_ENV, "demo-token")
    say(f"2/5 reference API on {base_url}")
    api = run_in_thread(host="127.0.0.1", port=port, token=os.environ[TOKEN_ENV])

    say("3/5 worker")
    worker = WorkerProcess(
        config_path=default_config_path(), log_path=Path(stack.home) / "logs" / "worker.log"
    )
    await asyncio.to_thread(worker.start)
    say(f"  worker ready (log: {worker.log_path})")

    watcher = TopicWatcher(
        stack.bootstrap_servers, [config.topics.results, config.topics.dead_letters]
    )
    tag = str(int(time.time()))
    say("4/5 changes in PostgreSQL")
    ids = await asyncio.to_thread(_changes, stack.pg_dsn(), tag, rows, say)

    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    producer.send(
        config.entities["contact"].topic,
        key=json.dumps({"id": int(ids[1])}, separators=(",", ":")).encode(),
        value=b"{this is not a Debezium event",
    )
    producer.flush()
    producer.close()
    say(f"  produced a malformed record for {ids[1]} (a dead letter expected)")

    # inserts + 2 updates + 1 delete + its tombstone + the malformed record
    expected = rows + 5
    say(f"5/5 waiting for {expected} results")

    def show(topic: str, event: dict[str, Any]) -> None:
        ext = event.get("external") or {}
        say(
            f"  {event['kind']:<11} contact {event['entity_id']:>5} {event.get('action', '-'):<6} "
            f"{event['reason']}  {ext.get('link') or ''}"
        )

    events = await asyncio.to_thread(
        watcher.collect,
        lambda _t, e: e.get("entity_id") in ids,
        expected,
        timeout_s=120,
        on_event=show,
    )
    watcher.close()

    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {os.environ[TOKEN_ENV]}"}
    ) as client:
        listing = (
            await client.get(f"{base_url}{target['collection_path']}", params={"limit": 1000})
        ).json()["items"]
    ours = [r for r in listing if r.get("email", "").endswith(f".{tag}@example.org")]
    say("\nexternal API now holds:")
    for rec in ours:
        say(
            f"  {rec['id']}  rowId={rec['rowId']}  {rec['firstName']} {rec['lastName']} "
            f"<{rec['email']}>"
        )

    results = [e for t, e in events if e["kind"] == "result"]
    letters = [e for t, e in events if e["kind"] == "dead_letter"]
    synced = [e for e in results if e["action"] != "skip"]
    latencies = [e["latency_ms"] for e in synced if e.get("committed_ms")]
    say("\nsummary")
    say(f"  changes seen   {len(events)} of {expected} expected")
    by_action = ", ".join(
        f"{a} {sum(e['action'] == a for e in synced)}" for a in ("create", "update", "delete")
    )
    say(f"  synced         {len(synced)} ({by_action})")
    say(f"  skipped        {len(results) - len(synced)}")
    say(f"  dead-lettered  {len(letters)}")
    say(f"  API calls      {sum(e['api_calls'] for e in results)}")
    if latencies:
        say(
            f"  commit-to-external-write latency  p50 {statistics.median(latencies):.0f} ms, "
            f"max {max(latencies):.0f} ms"
        )
    if keep_running:
        say("worker and reference API keep running; Ctrl-C to stop")
        try:
            while True:
                await asyncio.sleep(3600)
        finally:
            worker.stop()
            api.stop()
    worker.stop()
    api.stop()
    say("done; the stack keeps running (`cdcsync local down` stops it)")
    if len(events) < expected or len(ours) != rows - 1:
        raise SystemExit("demo incomplete: see the worker log " + str(worker.log_path))
