"""The bench's own table, connector and topic, and the changes it writes into PostgreSQL.

Everything here is the bench's alone (``public.bench_contact``, the ``cdcsync_bench``
slot and publication, the ``cdcsync.bench_contact`` topic), so the shared demo and
test data are never touched. Setup is idempotent: it first removes what an earlier
(possibly crashed) run left behind.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from kafka import TopicPartition
from kafka.errors import KafkaError

from cdcsync.bench.broker import BenchKafka
from cdcsync.connect.register import register, unregister
from cdcsync.connect.slots import drop_slot
from cdcsync.demo.harness import end_offsets as _end_offsets
from cdcsync.stack.kafka import TopicSpec
from cdcsync.stack.settings import StackSettings

__all__ = [
    "BENCH_TOPIC",
    "DRAIN_TOPIC",
    "Change",
    "Workload",
    "build_workload",
    "cleanup",
    "contact_ddl",
    "end_offsets",
    "fresh_topic",
    "load_fast",
    "load_steady",
    "setup",
]

BENCH_TABLE = "bench_contact"
BENCH_TOPIC = "cdcsync.bench_contact"
#: Phase 1's records alone, copied: the drains and the baselines process exactly these.
DRAIN_TOPIC = "cdcsync.bench_contact.drain"
SLOT = "cdcsync_bench"
CONNECTOR_TEMPLATE = Path(__file__).resolve().parent / "connector.json"

_FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Ken", "Frances", "Niklaus"]
_LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Thompson", "Allen"]


def contact_ddl(table: str) -> str:
    """The contact table the bench and the soak sync: the demo's columns, full replica
    identity (deletes carry their row)."""
    return f"""
CREATE TABLE public.{table} (
    id          bigint PRIMARY KEY,
    first_name  text,
    last_name   text,
    email       text NOT NULL UNIQUE,
    phone       text,
    notes       text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.{table} REPLICA IDENTITY FULL;
"""


@dataclass(frozen=True, slots=True)
class Change:
    """One row change to make: ``c`` insert, ``u`` update (mapped field), ``d`` delete."""

    op: str
    id: int
    first_name: str = ""
    phone: str = ""


@dataclass
class Workload:
    """The seed inserts, then the mixed changes, in commit order."""

    seed: list[Change]
    changes: list[Change]
    n_ids: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def all(self) -> list[Change]:
        return self.seed + self.changes

    def kafka_records(self) -> int:
        """Records Debezium writes for it: one per change, plus a tombstone per delete."""
        return len(self.all) + sum(1 for c in self.all if c.op == "d")


def build_workload(
    *, ids: int, updates: int, insert_share: float, delete_share: float, seed: int = 7
) -> Workload:
    """``ids`` seed rows, then ``updates`` updates of random live rows mixed with inserts of
    new rows and deletes (their share relative to the updates), deterministically."""
    rng = random.Random(seed)
    live = list(range(1, ids + 1))
    next_id = ids + 1
    seed_rows = [_row("c", i, rng) for i in live]
    n_ins, n_del = int(updates * insert_share), int(updates * delete_share)
    kinds = ["u"] * updates + ["c"] * n_ins + ["d"] * n_del
    rng.shuffle(kinds)
    changes: list[Change] = []
    for kind in kinds:
        if kind == "c" or not live:
            changes.append(_row("c", next_id, rng))
            live.append(next_id)
            next_id += 1
        elif kind == "d":
            victim = live.pop(rng.randrange(len(live)))
            changes.append(Change("d", victim))
        else:
            changes.append(_row("u", live[rng.randrange(len(live))], rng))
    counts = {"seed_inserts": ids, "updates": updates, "inserts": n_ins, "deletes": n_del}
    return Workload(seed_rows, changes, ids, counts)


def _row(op: str, i: int, rng: random.Random) -> Change:
    first = f"{rng.choice(_FIRST)}{rng.randrange(10**6)}"
    return Change(op, i, first, f"+41 {rng.randrange(10**9)}")


# -- setup and cleanup -----------------------------------------------------------------


def _connector_file(run_dir: Path, run_id: str) -> tuple[Path, str]:
    """The template with a per-run name: a fresh name starts with fresh Connect offsets."""
    doc = json.loads(CONNECTOR_TEMPLATE.read_text())
    doc["name"] = f"{doc['name']}-{run_id}"
    path = run_dir / "connector.json"
    path.write_text(json.dumps(doc, indent=2))
    return path, doc["name"]


def _bench_connectors(stack: StackSettings) -> list[str]:
    import httpx

    names = httpx.get(f"{stack.connect_url}/connectors", timeout=10).json()
    return [n for n in names if n.startswith("cdcsync-bench")]


def cleanup(stack: StackSettings, *, drop_table: bool = True) -> None:
    """Remove the bench connector(s), slot, publication and table; idempotent."""
    for name in _bench_connectors(stack):
        unregister(stack.connect_url, name)
    with psycopg.connect(stack.pg_dsn(), autocommit=True) as conn:
        drop_slot(conn, SLOT)
        conn.execute(f"DROP PUBLICATION IF EXISTS {SLOT}")
        if drop_table:
            conn.execute(f"DROP TABLE IF EXISTS public.{BENCH_TABLE}")


def delete_topics(kafka: BenchKafka, names: list[str]) -> None:
    """Delete topics the bench created (``names``, and every ``cdcsync-bench-*`` topic of
    the bench's own Faust apps; never a shared one); missing ones are fine."""
    admin = kafka.admin()
    try:
        existing = set(admin.list_topics())
        # Faust also makes <app id>-__assignor-__leader topics: every bench app id starts so.
        doomed = [n for n in existing if n in names or n.startswith("cdcsync-bench-")]
        if doomed:
            admin.delete_topics(doomed, timeout_ms=30000)
    except KafkaError:
        pass
    finally:
        admin.close()


def delete_groups(kafka: BenchKafka, groups: list[str]) -> None:
    """Delete the bench's consumer groups (the baselines commit under their own names)."""
    admin = kafka.admin()
    try:
        known = {g[0] for g in admin.list_consumer_groups()}
        doomed = [g for g in known if g in groups or g.startswith("cdcsync-bench-baseline-")]
        if doomed:
            admin.delete_consumer_groups(doomed)
    except KafkaError:
        pass
    finally:
        admin.close()


def setup(
    stack: StackSettings, kafka: BenchKafka, run_dir: Path, run_id: str, partitions: int
) -> str:
    """A fresh table and topic, and the bench connector streaming it; returns its name."""
    cleanup(stack)
    with psycopg.connect(stack.pg_dsn(), autocommit=True) as conn:
        conn.execute(contact_ddl(BENCH_TABLE).encode())
    fresh_topic(kafka, BENCH_TOPIC, partitions)
    path, name = _connector_file(run_dir, run_id)
    register(stack.connect_url, path, timeout=120)
    return name


def fresh_topic(kafka: BenchKafka, topic: str, partitions: int) -> None:
    """``topic`` created empty: an earlier run's copy is deleted first."""
    delete_topics(kafka, [topic])
    _wait_topic_gone(kafka, topic)
    kafka.ensure_topics([TopicSpec(topic, partitions)])


def _wait_topic_gone(kafka: BenchKafka, topic: str, timeout_s: float = 30.0) -> None:
    admin = kafka.admin()
    try:
        deadline = time.monotonic() + timeout_s
        while topic in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        admin.close()


def end_offsets(kafka: BenchKafka, topic: str) -> dict[int, int]:
    """Partition -> end offset of a topic."""
    consumer = kafka.consumer(group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        return {tp.partition: off for tp, off in _end_offsets(consumer, parts).items()}
    finally:
        consumer.close()


def wait_records(
    kafka: BenchKafka, topic: str, start: dict[int, int], count: int, timeout_s: float
) -> dict[int, int]:
    """Wait until ``count`` records were appended after ``start``; the end offsets then."""
    deadline = time.monotonic() + timeout_s
    while True:
        end = end_offsets(kafka, topic)
        got = sum(end[p] - start.get(p, 0) for p in end)
        if got >= count or time.monotonic() > deadline:
            return end
        time.sleep(0.5)


# -- loading ---------------------------------------------------------------------------


def _apply(cur: psycopg.Cursor[Any], batch: list[Change]) -> None:
    for c in batch:  # in order: an id may be inserted, updated and deleted in one batch
        if c.op == "c":
            cur.execute(
                f"INSERT INTO public.{BENCH_TABLE} (id, first_name, last_name, email, phone) "
                "VALUES (%s, %s, %s, %s, %s)",
                (c.id, c.first_name, f"L{c.id}", f"bench{c.id}@example.org", c.phone),
            )
        elif c.op == "u":
            cur.execute(
                f"UPDATE public.{BENCH_TABLE} SET first_name = %s, phone = %s, "
                "updated_at = now() WHERE id = %s",
                (c.first_name, c.phone, c.id),
            )
        else:
            cur.execute(f"DELETE FROM public.{BENCH_TABLE} WHERE id = %s", (c.id,))


def _chunks(items: list[Change], size: int) -> Iterator[list[Change]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def load_fast(stack: StackSettings, changes: list[Change], *, txn_size: int = 200) -> float:
    """Commit every change as fast as PostgreSQL takes them (``txn_size`` per transaction,
    pipelined); returns the seconds it took."""
    started = time.monotonic()
    with psycopg.connect(stack.pg_dsn()) as conn:
        for batch in _chunks(changes, txn_size):
            with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                _apply(cur, batch)
    return time.monotonic() - started


def load_steady(
    stack: StackSettings, changes: list[Change], *, rate: float, per_commit: int = 1
) -> float:
    """Commit the changes at a steady ``rate`` per second, ``per_commit`` per transaction;
    returns the achieved rate."""
    started = time.monotonic()
    done = 0
    with psycopg.connect(stack.pg_dsn()) as conn:
        for batch in _chunks(changes, per_commit):
            due = started + done / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with conn.transaction(), conn.cursor() as cur:
                _apply(cur, batch)
            done += len(batch)
    return done / max(time.monotonic() - started, 1e-9)


def steady_updates(workload: Workload, n: int, seed: int = 11) -> list[Change]:
    """``n`` updates of rows alive at the end of the workload."""
    gone = {c.id for c in workload.all if c.op == "d"}
    ids = sorted({c.id for c in workload.all if c.op == "c"} - gone)
    rng = random.Random(seed)
    return [_row("u", ids[rng.randrange(len(ids))], rng) for _ in range(n)]


def new_run_id() -> str:
    """A short id naming this run's connector, consumer groups and changelog topics."""
    return time.strftime("%m%d%H%M") + uuid.uuid4().hex[:4]
