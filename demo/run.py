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

from cdcsync.demo.harness import TopicWatcher, WorkerProcess, start_group_at_end
from cdcsync.refapi.server import RefApiThread, run_in_thread
from cdcsync.schemas.config import Config
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.commands import stack_up

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


async def _external_edit(
    client: httpx.AsyncClient,
    collection: str,
    entity_id: str,
    events: list[tuple[str, dict[str, Any]]],
    watcher: TopicWatcher,
    dsn: str,
    say: Callable[[str], None],
) -> dict[str, Any] | None:
    """Edit one object in the API, as a user of the external system would, and wait for it."""
    created = [e for _t, e in events if e["entity_id"] == entity_id and e.get("external")]
    if not created:
        return None
    url = f"{collection}/{created[0]['external']['id']}"
    current = (await client.get(url)).json()
    body = {k: v for k, v in current.items() if k not in ("id", "rowId")}
    await client.put(url, json=body | {"phone": "+1 555 0100"})
    say(f"\n6/6 edited contact {entity_id} in the external API (phone); waiting for the poll")
    found = await asyncio.to_thread(
        watcher.collect,
        lambda _t, e: e["entity_id"] == entity_id and e["action"] == "pull",
        1,
        timeout_s=30,
    )
    if not found:
        say("  no pull seen within 30 s")
        return None
    event = found[0][1]
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT phone FROM contact WHERE id = %s", (entity_id,)).fetchone()
    say(
        f"  pulled into PostgreSQL in {event['latency_ms']:.0f} ms after the poll saw it: "
        f"phone = {row[0] if row else None!r}"
    )
    return event


async def run_demo(
    config: Config,
    *,
    config_path: Path,
    rows: int,
    keep_running: bool,
    say: Callable[[str], None] = print,
) -> None:
    """Run the demo end to end with the configuration read from ``config_path``; print a summary."""
    rows = max(rows, 3)
    stack = StackSettings()
    say("1/6 local stack (PostgreSQL, Kafka, Kafka Connect + Debezium)")
    await asyncio.to_thread(stack_up, config, progress=say)
    target = config.entities["contact"].target.settings
    api = _start_api(target["base_url"], say)
    worker = await _start_worker(config, config_path, stack, say)
    watcher = TopicWatcher(
        stack.bootstrap_servers, [config.topics.results, config.topics.dead_letters]
    )
    tag = str(int(time.time()))
    say("4/6 changes in PostgreSQL")
    ids = await asyncio.to_thread(_changes, stack.pg_dsn(), tag, rows, say)
    _send_malformed(stack.bootstrap_servers, config.entities["contact"].topic, ids[1], say)
    # inserts + 2 updates + 1 delete + its tombstone + the malformed record
    expected = rows + 5
    events = await _collect(watcher, ids, expected, say)
    collection = f"{target['base_url']}{target['collection_path']}"
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {os.environ[TOKEN_ENV]}"}
    ) as client:
        pulled = await _external_edit(
            client, collection, ids[2], events, watcher, stack.pg_dsn(), say
        )
        ours = await _show_external(client, collection, tag, say)
    watcher.close()
    _summary(events, expected, pulled, say)
    await _finish(worker, api, keep_running=keep_running, say=say)
    if len(events) < expected or len(ours) != rows - 1 or pulled is None:
        raise SystemExit("demo incomplete: see the worker log " + str(worker.log_path))


def _start_api(base_url: str, say: Callable[[str], None]) -> RefApiThread:
    """The reference API on the port of the demo target's URL, with the demo's token."""
    port = int(httpx.URL(base_url).port or 80)
    os.environ.setdefault(TOKEN_ENV, "demo-token")
    say(f"2/6 reference API on {base_url}")
    return run_in_thread(host="127.0.0.1", port=port, token=os.environ[TOKEN_ENV])


async def _start_worker(
    config: Config, config_path: Path, stack: StackSettings, say: Callable[[str], None]
) -> WorkerProcess:
    """A worker process, its consumer group starting at the end of the entity topics."""
    say("3/6 worker")
    # The reference API starts empty each run: sync what happens from now on, not the
    # topic's backlog from earlier runs and tests.
    topics = [e.topic for e in config.entities.values()]
    await asyncio.to_thread(start_group_at_end, stack.bootstrap_servers, config.app.id, topics)
    say(f"  consumer group {config.app.id!r} starts at the end of {', '.join(topics)}")
    worker = WorkerProcess(
        config_path=config_path, log_path=Path(stack.home) / "logs" / "worker.log"
    )
    await asyncio.to_thread(worker.start)
    say(f"  worker ready (log: {worker.log_path})")
    return worker


def _send_malformed(
    bootstrap_servers: str, topic: str, entity_id: str, say: Callable[[str], None]
) -> None:
    """A record that is not a Debezium event, keyed like one: it must end as a dead letter."""
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers)
    producer.send(
        topic,
        key=json.dumps({"id": int(entity_id)}, separators=(",", ":")).encode(),
        value=b"{this is not a Debezium event",
    )
    producer.flush()
    producer.close()
    say(f"  produced a malformed record for {entity_id} (a dead letter expected)")


async def _collect(
    watcher: TopicWatcher, ids: list[str], expected: int, say: Callable[[str], None]
) -> list[tuple[str, dict[str, Any]]]:
    """The results and dead letters of the demo's rows, each printed as it arrives."""
    say(f"5/6 waiting for {expected} results")

    def show(topic: str, event: dict[str, Any]) -> None:
        ext = event.get("external") or {}
        say(
            f"  {event['kind']:<11} contact {event['entity_id']:>5} {event.get('action', '-'):<6} "
            f"{event['reason']}  {ext.get('link') or ''}"
        )

    found: list[tuple[str, dict[str, Any]]] = await asyncio.to_thread(
        watcher.collect,
        lambda _t, e: e.get("entity_id") in ids and e.get("origin", "source") == "source",
        expected,
        timeout_s=120,
        on_event=show,
    )
    return found


async def _show_external(
    client: httpx.AsyncClient, collection: str, tag: str, say: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Print (and return) the external records this run created."""
    response = await client.get(collection, params={"limit": 1000})
    listing = response.json()["items"]
    ours = [r for r in listing if r.get("email", "").endswith(f".{tag}@example.org")]
    say("\nexternal API now holds:")
    for rec in ours:
        say(
            f"  {rec['id']}  rowId={rec['rowId']}  {rec['firstName']} {rec['lastName']} "
            f"<{rec['email']}>"
        )
    return ours


def _summary(
    events: list[tuple[str, dict[str, Any]]],
    expected: int,
    pulled: dict[str, Any] | None,
    say: Callable[[str], None],
) -> None:
    """Counts by outcome, API calls and the commit-to-external-write latency."""
    results = [e for _t, e in events if e["kind"] == "result"]
    letters = [e for _t, e in events if e["kind"] == "dead_letter"]
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
    say(f"  pulled back    {1 if pulled else 0} external edit")
    if latencies:
        say(
            f"  commit-to-external-write latency  p50 {statistics.median(latencies):.0f} ms, "
            f"max {max(latencies):.0f} ms"
        )


async def _finish(
    worker: WorkerProcess, api: RefApiThread, *, keep_running: bool, say: Callable[[str], None]
) -> None:
    """Stop the worker and the reference API, at once or (``keep_running``) on Ctrl-C."""
    try:
        if keep_running:
            say("worker and reference API keep running; Ctrl-C to stop")
            while True:
                await asyncio.sleep(3600)
    finally:
        worker.stop()
        api.stop()
    say("done; the stack keeps running (`cdcsync local down` stops it)")
