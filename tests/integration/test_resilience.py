"""Crash and scale safety on the real stack: a rebalance, Kafka Connect and broker restarts.

Each test runs its own workers (app ``cdcsync-res-…``), reference API and result topics,
writes a stream of rows into ``public.contact`` while it disturbs the pipeline, then
asserts the end state: one external object per row holding the row's mapped fields, a
result for every Debezium record of the test's rows, per-entity order. The restarts
disturb everyone using the local stack: those tests put it back themselves (the stack's
``up``, then a probe row through Debezium; Connect is restarted if it does not stream) and
are skipped with ``CDCSYNC_SKIP_DISRUPTIVE=1``. Figures are printed: run with ``-s``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import random
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psycopg
import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from cdcsync.connect.register import connector_files, load, wait_running
from cdcsync.demo.harness import WorkerProcess
from cdcsync.refapi.server import run_in_thread
from cdcsync.schemas.config import Config
from cdcsync.stack import connect_worker, kafka
from cdcsync.stack.processes import is_alive, port_taken, wait_until
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.config import load_config

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "cdcsync.contact"
TOKEN, TOKEN_ENV = "res-" + uuid.uuid4().hex, "CDCSYNC_RES_IT_TOKEN"
WAIT_S = 120.0  # for the whole pipeline to catch up after a disruption
MAPPED = ("firstName", "lastName", "email", "phone")
# Added to every API and web port below, to run next to another stack (CDCSYNC_* settings).
PORT_OFFSET = int(os.environ.get("CDCSYNC_IT_PORT_OFFSET", "0"))
disruptive = pytest.mark.skipif(
    os.environ.get("CDCSYNC_SKIP_DISRUPTIVE") == "1", reason="CDCSYNC_SKIP_DISRUPTIVE=1"
)
Event = dict[str, Any]


class RedeliveryReappliedError(AssertionError):
    """A record Kafka delivered twice was applied twice (the state should have skipped it)."""


class DebeziumStalledError(AssertionError):
    """Debezium did not deliver every change of the stream to the entity topic."""


class Change(NamedTuple):
    """One Debezium record of one of our rows, as read from the entity topic."""

    entity_id: str
    op: str
    ts_ms: int


class Observer:
    """Reads our rows' Debezium records and every result and dead letter of the test's app."""

    def __init__(self, bootstrap: str, out_topics: list[str], tag: str) -> None:
        self.tag, self.consumer = tag, KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        parts = {t: [TopicPartition(t, p) for p in self.consumer.partitions_for_topic(t)]
                 for t in [TOPIC, *out_topics]}  # fmt: skip
        every = [tp for tps in parts.values() for tp in tps]
        self.consumer.assign(every)
        # Our rows come after the entity topic's end now; the other topics are all ours.
        # (Explicit offsets: kafka-python's seek_to_end() resolves lazily, at the first poll.)
        start = _offsets(self.consumer.end_offsets, parts[TOPIC])
        start |= _offsets(
            self.consumer.beginning_offsets, [tp for tp in every if tp.topic != TOPIC]
        )
        for tp, offset in start.items():
            self.consumer.seek(tp, offset)
        self.changes: dict[tuple[int, int], Change] = {}  # (partition, offset) -> change
        self.outcomes: list[Event] = []  # in topic order for each entity (key = entity id)

    def _take(self, topic: str, partition: int, offset: int, ts: int, value: bytes | None) -> None:
        if topic != TOPIC:
            self.outcomes.append(json.loads(value or b"{}") | {"_ts": ts})
            return
        with contextlib.suppress(ValueError):
            data = json.loads(value or b"null")
            row = isinstance(data, dict) and (data.get("after") or data.get("before"))
            if row and str(row.get("email", "")).endswith(f".{self.tag}@example.org"):
                self.changes[(partition, offset)] = Change(str(row["id"]), data["op"], ts)

    def wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Read until ``done()`` holds or the timeout passes; whether it held."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            for tp, records in self.consumer.poll(timeout_ms=300).items():
                for r in records:
                    self._take(tp.topic, tp.partition, r.offset, r.timestamp, r.value)
        return True

    def ours(self) -> list[Event]:
        """The results and dead letters of our rows' Debezium records."""
        return [o for o in self.outcomes if o["source"]["topic"] == TOPIC
                and (o["source"]["partition"], o["source"]["offset"]) in self.changes]  # fmt: skip

    def pending(self) -> list[tuple[int, int]]:
        """Our records that have no result or dead letter yet."""
        done = {(o["source"]["partition"], o["source"]["offset"]) for o in self.ours()}
        return sorted(set(self.changes) - done)


def _offsets(
    lookup: Callable[[list[TopicPartition]], dict[TopicPartition, int]],
    tps: list[TopicPartition],
    timeout_s: float = 30,
) -> dict[TopicPartition, int]:
    """``lookup(tps)``, retried while topics just created have no leader yet (kafka-python 2.2
    then fails the lookup, sometimes with an AttributeError from inside its fetcher)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return lookup(tps)
        except (KafkaError, AttributeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class Stream(threading.Thread):
    """Inserts (and updates) tagged rows every 0.1 s until released, then ``tail`` more."""

    def __init__(self, dsn: str, tag: str, *, updates: float = 0.0, tail: int = 40) -> None:
        super().__init__(name=f"stream-{tag}", daemon=True)
        self.dsn, self.tag, self.updates, self.left = dsn, tag, updates, tail
        self.ops, self.released, self.error = 0, threading.Event(), None
        self._rng = random.Random(tag)

    def run(self) -> None:
        ids: list[int] = []
        deadline = time.monotonic() + 300
        try:
            with psycopg.connect(self.dsn, autocommit=True) as db:
                while self.left > 0 and time.monotonic() < deadline:
                    if ids and self._rng.random() < self.updates:  # a new last_name each time
                        db.execute("UPDATE contact SET last_name = %s WHERE id = %s",
                                   (f"Last{self.ops}", self._rng.choice(ids)))  # fmt: skip
                    else:
                        ids.append(insert(db, self.tag, self.ops))
                    self.ops += 1
                    self.left -= self.released.is_set()
                    time.sleep(0.1)
        except Exception as exc:  # reported by finish()
            self.error = exc

    def wait_ops(self, n: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while self.ops < n and self.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.ops >= n, f"the stream wrote {self.ops} of {n} changes: {self.error}"

    def finish(self) -> None:
        self.released.set()
        self.join(timeout=120)
        assert not self.is_alive() and self.error is None, f"the stream failed: {self.error}"


def insert(db: Any, tag: str, i: int) -> int:
    (row_id,) = db.execute(
        "INSERT INTO contact (first_name, last_name, email, phone) VALUES (%s, %s, %s, %s) "
        "RETURNING id",
        (f"First{i}", f"Last{i}", f"r{i}.{tag}@example.org", f"+1 555 {i:04d}"),
    ).fetchone()
    return int(row_id)


@dataclass
class Rig:
    """One test's pipeline: its configuration, reference API, workers and observer."""

    stack: StackSettings
    config: Config
    tag: str
    api_url: str
    workers: list[WorkerProcess]
    observer: Observer
    figures: dict[str, Any] = field(default_factory=dict)

    def timed(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.monotonic()
        result = action()
        self.figures[name] = round(time.monotonic() - started, 1)
        return result

    def begin(self, **stream: Any) -> Stream:
        """Start the first worker, sync one row (its "latest" positions are then set), and
        start the stream; return once 20 changes are written."""
        self.workers[0].start()
        with psycopg.connect(self.stack.pg_dsn(), autocommit=True) as db:
            insert(db, self.tag, 99999)
        obs = self.observer
        assert obs.wait(lambda: bool(obs.changes) and not obs.pending(), 90), "warm-up not synced"
        changes = Stream(self.stack.pg_dsn(), self.tag, **stream)
        changes.start()
        changes.wait_ops(20)
        return changes

    def settle(self, stream: Stream) -> None:
        """Wait until Debezium delivered every change of the stream (and the warm-up row) and
        each record has an outcome, then a little longer for late re-deliveries."""
        since, obs, expected = time.monotonic(), self.observer, stream.ops + 1
        done = obs.wait(lambda: len(obs.changes) >= expected and not obs.pending(), WAIT_S)
        self.figures["caught_up_after_stream_s"] = round(time.monotonic() - since, 1)
        if done:  # a little longer: late re-deliveries need their outcomes too
            obs.wait(lambda: False, 3)
            done = obs.wait(lambda: not obs.pending(), 60)
        if len(obs.changes) < expected:
            raise DebeziumStalledError(
                f"Debezium delivered {len(obs.changes)} of the {expected} changes in {WAIT_S:.0f}s"
                f"; PostgreSQL walsenders (pid, since): {_walsenders(self.stack)}"
            )
        missing = [obs.changes[p] for p in obs.pending()]
        examples = ", ".join(f"id {c.entity_id} op {c.op}" for c in missing[:5])
        assert done, f"{len(missing)} records of our rows got no result or dead letter: {examples}"

    def report(self, name: str) -> None:
        changes, ours = list(self.observer.changes.values()), self.observer.ours()
        inserts = [c.entity_id for c in changes if c.op in ("c", "r")]
        self.figures |= {
            "rows": len(set(inserts)),
            "debezium_records": len(changes),
            "redelivered_by_debezium": len(inserts) - len(set(inserts)),
            "results": len(ours),
            "debezium_max_gap_s": _max_gap([c.ts_ms for c in changes]),
            "results_max_gap_s": _max_gap([o["_ts"] for o in ours]),
        }
        print(f"\nRESILIENCE {name}: {json.dumps(self.figures)}")


def _max_gap(stamps_ms: list[int]) -> float:
    """The longest silence between consecutive timestamps, in seconds: how long a stall was."""
    return max((b - a for a, b in itertools.pairwise(sorted(stamps_ms))), default=0) / 1000


def _walsenders(stack: StackSettings) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.pg_dsn()) as db:
        return db.execute("SELECT pid, backend_start::text FROM pg_stat_replication").fetchall()


def _config_file(
    home: Path,
    app_id: str,
    api_port: int,
    web_port: int,
    name: str,
    *,
    stack: StackSettings | None = None,
) -> Path:
    bootstrap = (stack or StackSettings()).bootstrap_servers
    data = yaml.safe_load((ROOT / "demo" / "cdcsync.yaml").read_text())
    data["app"].update(id=app_id, web_port=web_port, auto_offset_reset="latest",
                       broker=f"kafka://{bootstrap}",
                       datadir=str(home / f"faust-{name}"))  # fmt: skip
    data["topics"].update({r: f"{app_id}.{r}" for r in ("results", "dead_letters", "conflicts")})
    contact = data["entities"]["contact"]
    contact.pop("poll", None)  # one direction: every outcome comes from a database change
    contact["policies"]["unknown_target"] = "ignore"
    target = contact["target"]["settings"]
    target.update(base_url=f"http://127.0.0.1:{api_port}", token_env=TOKEN_ENV)
    path = home / f"cdcsync-{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def make_rig(tmp_path: Path, running_stack: StackSettings) -> Iterator[Callable[..., Rig]]:
    """Build a rig: ``make_rig(api_port, web_ports)``; all torn down and the stack restored."""
    from cdcsync.streams.commands import stack_up

    made: list[tuple[Rig, Any]] = []

    def make(api_port: int, web_ports: list[int]) -> Rig:
        api_port, web_ports = api_port + PORT_OFFSET, [p + PORT_OFFSET for p in web_ports]
        app_id, tag = f"cdcsync-res-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:10]
        paths = [_config_file(tmp_path, app_id, api_port, port, f"w{i}")
                 for i, port in enumerate(web_ports)]  # fmt: skip
        config = load_config(paths[0])
        stack_up(config, progress=lambda _msg: None)  # this app's topics
        api = run_in_thread(host="127.0.0.1", port=api_port, token=TOKEN)
        logs = running_stack.logs_dir
        workers = [WorkerProcess(config_path=p, env={TOKEN_ENV: TOKEN},
                                 log_path=logs / f"worker-{app_id}-w{i}.log")
                   for i, p in enumerate(paths)]  # fmt: skip
        topics = [config.topics.results, config.topics.dead_letters]
        observer = Observer(running_stack.bootstrap_servers, topics, tag)
        made.append((Rig(running_stack, config, tag, api.url, workers, observer), api))
        return made[-1][0]

    yield make
    for rig, api in made:
        for worker in rig.workers:
            worker.stop()
        api.stop()
        rig.observer.consumer.close()
        restore_stack(rig.config)
        with contextlib.suppress(KafkaError):  # tidying only
            admin = KafkaAdminClient(bootstrap_servers=running_stack.bootstrap_servers)
            with contextlib.closing(admin):
                mine = [t for t in admin.list_topics() if t.startswith(rig.config.app.id)]
                admin.delete_topics(mine)
                admin.delete_consumer_groups([rig.config.app.id])


def restore_stack(config: Config) -> None:
    """Start what a test stopped, then prove Debezium streams; restart Connect if it does not."""
    from cdcsync.streams.commands import stack_up

    stack = StackSettings()
    for _attempt in range(2):
        stack_up(config, progress=lambda _msg: None)
        if _debezium_streams(stack):
            return
        connect_worker.stop(stack)  # e.g. a task stuck holding the replication slot
    raise AssertionError("Debezium does not stream even after a Connect restart; see connect.log")


def _debezium_streams(stack: StackSettings, timeout_s: float = 60) -> bool:
    """Whether a probe row reaches the entity topic within ``timeout_s``."""
    probe = uuid.uuid4().hex[:10]
    observer = Observer(stack.bootstrap_servers, [], probe)
    with contextlib.closing(observer.consumer):
        with psycopg.connect(stack.pg_dsn(), autocommit=True) as db:
            insert(db, probe, 0)
        return observer.wait(lambda: bool(observer.changes), timeout_s)


def _lost_with_crash(reason: str) -> bool:
    """A redelivered record's skip whose first outcome was lost in a crash or failover: the
    change was applied (or carried by a later one) and stored, its result never reached Kafka."""
    return reason.startswith(("already applied", "no mapped field changed"))


def assert_end_state(rig: Rig, *, updates: bool = False, crashed: Collection[int] = ()) -> None:
    """One object per row with the row's fields; per entity: one create, in order, no DLQ.

    On the ``crashed`` partitions (a worker killed -9 held them, or a broker's failover cut
    a worker's sends short) a record may also have been applied and stored without its
    result (its redelivery is a skip), or applied and reported without its state (the next
    owner writes the same values again, to the same external object).
    """
    with psycopg.connect(rig.stack.pg_dsn()) as db:
        rows = db.execute(
            "SELECT id, first_name, last_name, email, phone FROM contact WHERE email LIKE %s",
            (f"%.{rig.tag}@example.org",),
        ).fetchall()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = httpx.get(f"{rig.api_url}/api/v1/contacts", params={"limit": 1000}, headers=headers)
    objects = [o for o in body.raise_for_status().json()["items"]
               if o["email"].endswith(f".{rig.tag}@example.org")]  # fmt: skip
    emails = [o["email"] for o in objects]
    twice = sorted({e for e in emails if emails.count(e) > 1})
    assert not twice, f"duplicate external objects for {len(twice)} rows: {twice[:5]}"
    by_email = {o["email"]: o for o in objects}
    missing = [r[0] for r in rows if r[3] not in by_email]
    assert not missing, f"{len(missing)} of {len(rows)} rows never reached the API: {missing[:10]}"
    wrong = [(r, by_email[r[3]]) for r in rows
             if [by_email[r[3]][f] for f in MAPPED] != list(r[1:])]  # fmt: skip
    assert not wrong, f"{len(wrong)} objects differ from their row, e.g. {wrong[:2]}"
    assert len(objects) == len(rows), f"{len(objects)} objects for {len(rows)} rows"

    letters = [(o["reason"], o["error"]) for o in rig.observer.ours() if o["kind"] != "result"]
    assert not letters, f"dead letters for our rows: {letters[:5]}"
    per_entity: dict[str, list[Event]] = {}
    for o in rig.observer.ours():
        per_entity.setdefault(o["entity_id"], []).append(o)
    reapplied = []  # Kafka re-delivered a record (rebalance) and it was applied again
    for entity_id, outcomes in per_entity.items():
        crash = outcomes[0]["source"]["partition"] in crashed
        reapplied += _check_entity(entity_id, outcomes, updates=updates, crash=crash)
    if reapplied:
        raise RedeliveryReappliedError(f"{len(reapplied)} applied twice, e.g. {reapplied[0]}")


def _check_entity(
    entity_id: str, outcomes: list[Event], *, updates: bool, crash: bool
) -> list[str]:
    """One entity's outcomes: in order, one create first; the records applied twice."""
    story = [(o["source"]["offset"], o["action"], o["reason"]) for o in outcomes]
    firsts: dict[int, tuple[str, str]] = {}  # each record's first outcome, as written
    objects = {(o.get("external") or {}).get("id") for o in outcomes if o["action"] != "skip"}
    reapplied = []
    for offset, action, reason in story:
        if offset not in firsts:
            firsts[offset] = (action, reason)
        elif action != "skip" and not (crash and len(objects) == 1):  # the same object again
            reapplied.append(f"id {entity_id} @{offset}: {story}")
    # After a crash a record's first outcome may be lost: its redelivery's skip does not say
    # whether it was applied on its own or carried by a later one.
    unknown = {o for o, (a, r) in firsts.items() if crash and a == "skip" and _lost_with_crash(r)}
    # A coalesced change ends with its carrier (a later offset), so it is reported after
    # it; every other record's outcome comes in offset order.
    carried = {o: r for o, (_a, r) in firsts.items() if r.startswith("coalesced:")}
    applied = [o for o in firsts if o not in carried and o not in unknown]
    assert applied == sorted(applied), f"id {entity_id}: applied out of order: {story}"
    for offset, reason in carried.items():
        carrier = int(re.search(r"offset (\d+)", reason).group(1))  # type: ignore[union-attr]
        assert offset < carrier and carrier in firsts, f"id {entity_id}: {story}"
    by_offset = [firsts[o] for o in sorted(firsts) if o not in unknown]
    if crash:  # a create whose result and state were lost: its redelivery finds the object
        by_offset = [("create" if r.startswith("adopted existing object") else a, r)
                     for a, r in by_offset]  # fmt: skip
    actions = [action for action, _r in by_offset]
    created_first = bool(actions) and actions[0] == "create"
    assert created_first or min(firsts) in unknown, f"id {entity_id}: {story}"
    assert "create" not in actions[1:], f"id {entity_id}: created twice: {story}"
    if updates:  # each update changes last_name: written, or carried by the next one
        later = by_offset[1:] if created_first else by_offset
        assert all(a == "update" or r.startswith("coalesced:") for a, r in later), story
        ends = not later or later[-1][0] == "update" or max(firsts) in unknown
        assert ends, f"id {entity_id}: {story}"
    return reapplied


def _members(
    rig: Rig, n: int, timeout_s: float = 90, *, holding: int | None = None
) -> list[list[int]]:
    """Wait until the group is stable with ``n`` workers, ``holding`` of them (default:
    all) holding partitions of the entity topic; their partitions."""
    admin = KafkaAdminClient(bootstrap_servers=rig.stack.bootstrap_servers)
    deadline, held = time.monotonic() + timeout_s, []
    with contextlib.closing(admin):
        while time.monotonic() < deadline:
            (group,) = admin.describe_consumer_groups([rig.config.app.id])
            held = [sorted(p for t, ps in m.member_assignment.assignment if t == TOPIC for p in ps)
                    for m in group.members if m.member_assignment]  # fmt: skip
            holders = len([ps for ps in held if ps])
            if group.state == "Stable" and len(held) == n and holders >= (holding or n):
                return sorted(held)
            time.sleep(0.5)
    raise AssertionError(f"not {n} workers holding {TOPIC} after {timeout_s}s: {held}")


def test_a_second_worker_joins_and_the_first_leaves_mid_stream(make_rig: Callable[..., Rig]):
    rig = make_rig(8903, [6071, 6072])
    first, second = rig.workers
    stream = rig.begin(updates=0.6, tail=30)
    rig.timed("second_worker_ready_s", second.start)
    rig.figures["partitions_while_both_ran"] = _members(rig, 2)
    stream.wait_ops(stream.ops + 25)
    rig.timed("first_worker_left_s", first.stop)
    _members(rig, 1)
    stream.finish()
    rig.settle(stream)
    rig.report("rebalance")
    assert second.proc.poll() is None, "the second worker died"  # type: ignore[union-attr]
    assert stream.ops >= 80, f"only {stream.ops} changes were streamed"
    assert_end_state(rig, updates=True)


def _kill_connect(stack: StackSettings) -> None:
    """kill -9 Kafka Connect, as a crash would: no offset flush, no clean task stop."""
    pid = connect_worker.pidfile(stack).live_pid()
    assert pid is not None, "Kafka Connect is not running from this stack's pid file"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not is_alive(pid), what="connect exit", timeout=30)
    connect_worker.pidfile(stack).remove()
    # The stack refuses to start Connect while its port looks taken (sockets still closing).
    wait_until(lambda: not port_taken(stack.host, stack.connect_port), what="port", timeout=120)


@disruptive
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_kafka_connect_restart_mid_stream_loses_nothing(make_rig: Callable[..., Rig], how: str):
    rig = make_rig(8904 + (how == "sigkill"), [6073 + (how == "sigkill")])
    stream = rig.begin()
    stop = connect_worker.stop if how == "sigterm" else _kill_connect
    rig.timed("connect_stop_s", lambda: stop(rig.stack))
    # Only the worker process is started again: the connector's config and offsets are in
    # Kafka, so Debezium resumes from its committed LSN by itself.
    stack, classes = rig.stack, [load(f).connector_class for f in connector_files()]
    start = functools.partial(connect_worker.start, stack, stack.connect_libs, stack.plugin_path)
    rig.timed("connect_rest_up_s", lambda: start(required=classes, progress=print))
    rig.timed("connector_running_after_rest_s", lambda: _connector_running(stack))
    stream.finish()
    rig.settle(stream)
    rig.report(f"connect-{how}")
    assert rig.workers[0].proc.poll() is None, "the worker died"  # type: ignore[union-attr]
    assert_end_state(rig)


@disruptive
def test_broker_restart_mid_stream_loses_nothing(make_rig: Callable[..., Rig]):
    rig = make_rig(8907, [6076])
    stream, stack, (worker,) = rig.begin(), rig.stack, rig.workers
    rig.timed("broker_stop_s", lambda: kafka.stop(stack))
    pid = rig.timed("broker_launch_s", lambda: kafka.launch(stack, stack.kafka_libs, print))
    rig.timed("broker_healthy_s", lambda: kafka.wait_healthy(stack, pid))
    # The worker on its own: a tombstone produced now must come back as a skip result.
    probe_id = str(-random.randrange(10**9))
    with contextlib.closing(KafkaProducer(bootstrap_servers=stack.bootstrap_servers)) as p:
        p.send(TOPIC, key=json.dumps({"id": int(probe_id)}).replace(" ", "").encode(), value=None)
    obs = rig.observer

    def probed() -> bool:
        return any(o["entity_id"] == probe_id for o in obs.outcomes)

    resumed = rig.timed("worker_result_after_broker_s", lambda: obs.wait(probed, 120))
    assert resumed, "the worker produced no result after the broker restart (probe tombstone)"
    stream.finish()
    try:
        rig.settle(stream)
    finally:
        rig.report("broker")
    # Neither the worker nor Connect was touched: both reconnected by themselves.
    assert worker.proc.poll() is None, "the worker died"  # type: ignore[union-attr]
    _connector_running(stack, timeout_s=10)
    assert_end_state(rig)
    # Debezium resumed once the broker was back, not after minutes of slot retries (the
    # revoked task's stop must release the replication slot: task.shutdown.graceful.timeout.ms).
    outage = sum(rig.figures[k] for k in ("broker_stop_s", "broker_launch_s", "broker_healthy_s"))
    pause = rig.figures["debezium_max_gap_s"]
    assert pause < outage + 30, f"Debezium paused {pause:.0f}s for a {outage:.0f}s broker outage"


def _connector_running(stack: StackSettings, timeout_s: float = 120) -> None:
    wait_running(stack.connect_url, load(connector_files()[0]).name, timeout_s=timeout_s)
