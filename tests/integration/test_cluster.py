"""A 3-broker KRaft cluster on loopback, 3 workers, one broker and one worker killed mid-stream.

`local up --brokers 3` on a stack of its own (home under pytest's tmp dir, ports apart from
the default stack's, jars shared): 3 combined broker+controller nodes, replication factor 3
and min.insync.replicas 2 for every topic. Three workers of one app share the contact
entity's partitions while rows are inserted and updated in PostgreSQL; mid-stream the active
controller is killed with SIGKILL and so is one worker, then both are started again. The
end state must hold as in test_resilience: every Debezium record of the test's rows has an
outcome, no dead letter, one external object per row (no duplicate creates), per-entity order.
The longest silence between results is how long the stream paused. Figures are printed
(run with ``-s``); the stack is stopped and its home deleted at the end
(``CDCSYNC_CLUSTER_IT_KEEP=1`` keeps it, logs included).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from cdcsync.connect.register import connector_files
from cdcsync.demo.harness import WorkerProcess, start_group_at_end
from cdcsync.refapi.server import run_in_thread
from cdcsync.stack import kafka, local
from cdcsync.stack.processes import is_alive, port_taken, wait_until
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.config import load_config
from cdcsync.streams.topics import topic_specs
from tests.integration.test_resilience import (
    TOKEN,
    TOKEN_ENV,
    TOPIC,
    Event,
    Observer,
    Rig,
    Stream,
    _config_file,
    _lost_with_crash,
    _max_gap,
    _members,
    assert_end_state,
    insert,
)

ROOT = Path(__file__).resolve().parents[2]
# Node n listens on kafka_port/controller_port + 100*(n-1): 24092..24292 and 24093..24293.
# Below Linux's ephemeral range (32768-60999): a client connection's own port there made
# a CI run find 55492 taken before PostgreSQL could bind it.
PORTS = {"pg_port": 25492, "kafka_port": 24092, "controller_port": 24093, "connect_port": 24083}
API_PORT, WEB_PORTS = 8941, (6091, 6092, 6093)


@pytest.fixture(scope="module")
def cluster() -> Iterator[StackSettings]:
    # Under /tmp, not pytest's private tmp dir: PostgreSQL runs as the postgres user.
    top = Path(tempfile.mkdtemp(prefix="cdcsync-cluster-it-"))
    top.chmod(0o755)
    settings = StackSettings(home=top / ".cdcsync", brokers=3, **PORTS)  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        local.up(
            sql_files=[ROOT / "demo" / "schema.sql"],
            connector_files=connector_files(),
            settings=settings,
            progress=lambda msg: print(f"cluster {msg}"),
        )
        print(f"cluster stack up in {time.monotonic() - started:.1f}s")
        yield settings
    finally:
        local.down(settings=settings, progress=lambda msg: print(f"cluster {msg}"))
        if not os.environ.get("CDCSYNC_CLUSTER_IT_KEEP"):
            shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def rig(cluster: StackSettings, tmp_path: Path) -> Iterator[Rig]:
    app_id, tag = f"cdcsync-cluster-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:10]
    paths = [_config_file(tmp_path, app_id, API_PORT, port, f"w{i}", stack=cluster)
             for i, port in enumerate(WEB_PORTS)]  # fmt: skip
    config = load_config(paths[0])
    local.up(topics=topic_specs(config), settings=cluster, progress=lambda _msg: None)
    env = {
        "CDCSYNC_HOME": str(cluster.home),
        **{f"CDCSYNC_{k.upper()}": str(v) for k, v in PORTS.items()},
        "CDCSYNC_DATABASE_URL": cluster.pg_dsn(),
        TOKEN_ENV: TOKEN,
    }
    workers = [WorkerProcess(config_path=p, env=env,
                             log_path=cluster.logs_dir / f"worker-{app_id}-w{i}.log")
               for i, p in enumerate(paths)]  # fmt: skip
    outputs = [config.topics.results, config.topics.dead_letters]
    api = run_in_thread(host="127.0.0.1", port=API_PORT, token=TOKEN)
    observer = None
    try:
        start_group_at_end(cluster.bootstrap_servers, config.app.id, [TOPIC])
        started = time.monotonic()
        _start_all(workers)
        ready_s = round(time.monotonic() - started, 1)
        # Only now: a consumer made while the new topics settle may never fetch them.
        _wait_for_leaders(cluster, [TOPIC, *outputs])
        observer = Observer(cluster.bootstrap_servers, outputs, tag)
        made = Rig(cluster, config, tag, api.url, workers, observer)
        made.figures["workers_ready_s"] = ready_s
        yield made
    finally:
        for worker in workers:
            worker.stop()
        api.stop()
        if observer is not None:
            observer.consumer.close()


def _wait_for_leaders(stack: StackSettings, topics: list[str], timeout_s: float = 60) -> None:
    """Wait until every partition of ``topics`` has a leader and its full set of replicas."""
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)

    def ready() -> bool:
        described = admin.describe_topics(topics)
        return len(described) == len(topics) and all(
            p["leader"] >= 0 and len(p["isr"]) == stack.replication_factor
            for t in described
            for p in t["partitions"]
        )

    with contextlib.closing(admin):
        wait_until(ready, what="topic leaders", timeout=timeout_s, interval=0.5)


def _replication(stack: StackSettings, topics: list[str]) -> dict[str, tuple[set[int], str]]:
    """Each topic's replica counts and its min.insync.replicas."""
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    with contextlib.closing(admin):
        copies = {t["topic"]: {len(p["replicas"]) for p in t["partitions"]}
                  for t in admin.describe_topics(topics)}  # fmt: skip
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        isr = {}
        for response in admin.describe_configs(resources):
            for _code, _msg, _type, name, entries in response.resources:
                isr[name] = next(e[1] for e in entries if e[0] == "min.insync.replicas")
    return {t: (copies[t], isr[t]) for t in topics}


def _controller_and_leadership(stack: StackSettings, topic: str) -> tuple[int, list[int]]:
    """The active controller's node id and the partitions of ``topic`` it leads."""
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    with contextlib.closing(admin):
        controller = int(admin.describe_cluster()["controller_id"])
        (described,) = admin.describe_topics([topic])
    led = sorted(p["partition"] for p in described["partitions"] if p["leader"] == controller)
    return controller, led


def _kill_node(stack: StackSettings, node: int) -> None:
    """kill -9 one broker, as a crash would: no controlled shutdown, no leadership handed over."""
    pid = kafka.pidfile(stack, node).live_pid()
    assert pid is not None, f"kafka node {node} is not running from this stack's pid file"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not is_alive(pid), what=f"kafka node {node} exit", timeout=30)
    for port in stack.node_ports(node):
        wait_until(lambda p=port: not port_taken(stack.host, p), what="port", timeout=120)


def _start_all(workers: list[WorkerProcess]) -> None:
    """Start the workers side by side (each waits until Faust says it is ready)."""
    errors: list[BaseException] = []

    def start(worker: WorkerProcess) -> None:
        try:
            worker.start(timeout_s=180)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"a worker did not start: {errors[0]}"


def _partitions_of(rig: Rig, worker: WorkerProcess) -> list[int]:
    """The entity topic's partitions ``worker`` holds now (its member id is in its log)."""
    joined = re.findall(r"with member_id (\S+)", worker.log_path.read_text(errors="replace"))
    assert joined, f"no member id in {worker.log_path}"
    admin = KafkaAdminClient(bootstrap_servers=rig.stack.bootstrap_servers)
    with contextlib.closing(admin):
        (group,) = admin.describe_consumer_groups([rig.config.app.id])
    (member,) = [m for m in group.members if m.member_id == joined[-1]]
    return sorted(p for t, ps in member.member_assignment.assignment if t == TOPIC for p in ps)


def _outcome_figures(obs: Observer) -> dict[str, Any]:
    """Re-deliveries, results lost with the killed worker, the result stream's silences."""
    firsts: dict[tuple[int, int], Event] = {}
    for o in sorted(obs.ours(), key=lambda o: o["_ts"]):
        firsts.setdefault((o["source"]["partition"], o["source"]["offset"]), o)
    latency = [firsts[k]["_ts"] - change.ts_ms for k, change in obs.changes.items() if k in firsts]
    lost = [k for k, o in firsts.items() if o["action"] == "skip" and _lost_with_crash(o["reason"])]
    again = [(o["source"]["partition"], o["source"]["offset"], o["action"]) for o in obs.ours()
             if o is not firsts[(o["source"]["partition"], o["source"]["offset"])]]  # fmt: skip
    return {
        "outcomes_beyond_one_per_record": len(again),
        "applied_again": sorted(a for a in again if a[2] != "skip"),
        "results_lost_then_skipped": sorted(lost),
        "creates_lost_then_adopted": sorted(
            k for k, o in firsts.items() if o["reason"].startswith("adopted existing")
        ),
        "first_outcomes_max_gap_s": _max_gap([o["_ts"] for o in firsts.values()]),
        "change_to_first_outcome_max_s": max(latency, default=0) / 1000,
    }


def test_a_broker_and_a_worker_killed_mid_stream_lose_nothing(rig: Rig) -> None:
    started, stack, config, obs = time.monotonic(), rig.stack, rig.config, rig.observer
    statuses = local.status(settings=StackSettings(home=stack.home, **PORTS))  # type: ignore[arg-type]
    assert [s.name for s in statuses if s.running] == [
        "postgres", "kafka-1", "kafka-2", "kafka-3", "connect"
    ], local.format_status(statuses)  # fmt: skip

    # Faust's assignor is sticky with at most ceil(4 / 3) = 2 partitions a worker: a worker
    # that joins after the first assignment may stay idle (a standby), so 2 hold them.
    rig.figures["partitions_per_worker"] = _members(rig, 3, holding=2)
    with psycopg.connect(stack.pg_dsn(), autocommit=True) as db:
        insert(db, rig.tag, 99999)
    synced = obs.wait(lambda: bool(obs.changes) and not obs.pending(), 120)
    assert synced, f"warm-up not synced: changes {obs.changes}, outcomes {obs.outcomes}"

    stream = Stream(stack.pg_dsn(), rig.tag, updates=0.5, tail=60)
    stream.start()
    stream.wait_ops(60)
    node, led = _controller_and_leadership(stack, TOPIC)
    held = {i: _partitions_of(rig, w) for i, w in enumerate(rig.workers)}
    victim = rig.workers[next(i for i in (1, 0, 2) if held[i])]  # one holding partitions
    rig.figures |= {"killed_node": node, "partitions_it_led": led,
                    "killed_workers_partitions": held[rig.workers.index(victim)]}  # fmt: skip
    rig.timed("broker_kill_s", lambda: _kill_node(stack, node))
    rig.timed("worker_kill_s", lambda: victim.stop(kill=True))
    stream.wait_ops(stream.ops + 100)  # about 10 s with one broker and one worker down
    pid = rig.timed("broker_launch_s", lambda: kafka.launch(stack, stack.kafka_libs, print, node))
    rig.timed("broker_healthy_s", lambda: kafka.wait_healthy(stack, pid))
    rig.timed("worker_restart_s", lambda: victim.start(timeout_s=180))
    stream.finish()
    try:
        rig.settle(stream)
    finally:
        rig.figures |= {"changes": len(obs.changes), "lost": len(obs.pending())}
        rig.figures |= _outcome_figures(obs)
        rig.figures["test_s"] = round(time.monotonic() - started, 1)
        rig.report("cluster")
    # One external object per row holding the row's fields (no duplicate create, nothing
    # lost), no dead letter, each entity's records applied in order.
    # The killed worker, and any worker whose sends the broker's failover cut short, may have
    # applied a change without its result reaching Kafka (its redelivery is a skip) or without
    # its state (the update is written again): counted above, allowed on every partition.
    assert_end_state(rig, updates=True, crashed=range(config.topics.partitions))
    for worker in rig.workers:
        assert worker.proc is not None and worker.proc.poll() is None, "a worker died"
    assert rig.figures["results_max_gap_s"] < 90, "the result stream paused for too long"
    # Every topic had three copies, two of them needed for a write: cdcsync's, Kafka's own
    # and Connect's (Debezium's heartbeat topic exists once the connector has run 10 s).
    internal = ["__consumer_offsets", "cdcsync-connect-offsets", "cdcsync-connect-configs",
                "cdcsync-connect-status", "__debezium-heartbeat.cdcsync"]  # fmt: skip
    replication = _replication(stack, internal + [s.name for s in topic_specs(config)])
    assert {t: r for t, r in replication.items() if r != ({3}, "2")} == {}, replication
    # Faust makes its leader-election topic itself, with its own replication setting.
    leader = f"{config.app.id}-__assignor-__leader"
    print(f"CLUSTER {leader}: replicas, min.insync.replicas {_replication(stack, [leader])}")
