"""Bring the whole local stack up, down, or report on it: PostgreSQL, Kafka, Connect, connectors."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg

import cdcsync
from cdcsync.connect.register import (
    connector_files as shipped_connector_files,
)
from cdcsync.connect.register import (
    connector_status,
    list_connectors,
    load,
    register,
)
from cdcsync.errors import CdcsyncError, StackError
from cdcsync.stack import connect_worker, kafka, maven, postgres
from cdcsync.stack import secure as tls
from cdcsync.stack.kafka import TopicSpec
from cdcsync.stack.processes import Progress, wait_until
from cdcsync.stack.settings import DEBEZIUM_VERSION, KAFKA_VERSION, StackSettings

__all__ = ["PartStatus", "demo_defaults", "down", "format_status", "status", "up"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartStatus:
    """One part of the stack as `status()` sees it."""

    name: str
    running: bool
    pid: int | None
    address: str
    detail: str = ""


class _Steps:
    """Prefixes each progress line with the seconds since `up`/`down` began."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.started = time.monotonic()
        self._lock = threading.Lock()  # jar fetches report from worker threads

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, message: str) -> None:
        log.info("%s", message)
        with self._lock:
            self.progress(f"[{self.elapsed:5.1f}s] {message}")


def demo_defaults(
    settings: StackSettings | None = None,
) -> tuple[list[Path], list[TopicSpec], list[Path]]:
    """SQL files, topics and connector files of the demo: contact table, its topic, Debezium."""
    settings = settings or StackSettings()
    schema = Path(cdcsync.__file__).parent / "demo" / "schema.sql"
    return [schema], [TopicSpec("cdcsync.contact", settings.partitions)], shipped_connector_files()


def _ensure_postgres(settings: StackSettings, step: _Steps) -> int:
    pid = postgres.running_pid(settings)
    address = f"{settings.pg_host}:{settings.pg_port}"
    if pid is not None and not postgres.config_current(settings):
        step(f"postgres: settings changed since pid {pid} started; restarting it")
        postgres.stop(settings)
        pid = None
    if pid is not None:
        if not postgres.healthy(settings):
            step(f"postgres: pid {pid} is running but not answering yet; waiting")
            wait_until(
                lambda: postgres.healthy(settings),
                what="postgres",
                timeout=settings.start_timeout,
                pid=pid,
            )
        step(f"postgres: reusing pid {pid} on {address}")
        return pid
    pid = postgres.start(settings, step)
    step(f"postgres: started pid {pid} on {address}")
    return pid


def _node_name(settings: StackSettings, node: int) -> str:
    return "kafka" if settings.brokers == 1 else f"kafka-{node}"


def _node_address(settings: StackSettings, node: int) -> str:
    return f"{settings.host}:{settings.node_ports(node)[0]}"


def _fetch_and_launch_kafka(settings: StackSettings, step: _Steps) -> tuple[list[int], bool]:
    """Fetch the broker jars if needed and start each node without waiting; (pids, reused)."""
    maven.ensure_kafka_libs(settings, step)
    kafka.cluster_id(settings)  # made once, before the nodes format their storage with it
    nodes = list(settings.nodes)
    with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="kafka-up") as pool:
        launched = list(pool.map(lambda node: _launch_node(settings, node, step), nodes))
    return [pid for pid, _reused in launched], all(reused for _pid, reused in launched)


def _launch_node(settings: StackSettings, node: int, step: _Steps) -> tuple[int, bool]:
    """Start one node without waiting (format its storage first if new); (pid, reused)."""
    name = _node_name(settings, node)
    pid = kafka.pidfile(settings, node).live_pid()
    if pid is not None and not kafka.config_current(settings, node):
        step(f"{name}: settings changed since pid {pid} started; restarting it")
        kafka.stop_node(settings, node)
        pid = None
    if pid is not None:
        return pid, True
    pid = kafka.launch(settings, settings.kafka_libs, step, node=node)
    step(f"{name}: starting pid {pid} on {_node_address(settings, node)}")
    return pid, False


def _ensure_connect(settings: StackSettings, required: Sequence[str], step: _Steps) -> int:
    pid = connect_worker.pidfile(settings).live_pid()
    if pid is not None and not connect_worker.config_current(settings, settings.plugin_path):
        step(f"connect: settings changed since pid {pid} started; restarting it")
        connect_worker.stop(settings)
        pid = None
    if pid is not None:
        connect_worker.wait_healthy(settings, pid)
        step(f"connect: reusing pid {pid} on {settings.connect_url}")
        return pid
    step(f"connect: starting worker on {settings.connect_url}")
    pid = connect_worker.start(
        settings, settings.connect_libs, settings.plugin_path, required=required, progress=step
    )
    step(f"connect: ready, pid {pid}")
    return pid


def _start_processes(
    settings: StackSettings, sql_paths: Sequence[Path], step: _Steps
) -> tuple[int, list[int], bool]:
    """Start PostgreSQL (and apply the SQL) while the jars are fetched and the brokers
    launched; ``(postgres pid, kafka pids, kafka reused)``, the brokers not yet healthy.
    """
    # Jars are fetched in parallel (first run only) while PostgreSQL starts; the broker's JVM
    # is launched as soon as its jars are there, so it boots while SQL is applied.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="stack-up") as pool:
        kafka_job = pool.submit(_fetch_and_launch_kafka, settings, step)
        connect_jobs = [
            pool.submit(maven.ensure_connect_libs, settings, step),
            pool.submit(maven.ensure_debezium_plugin, settings, step),
        ]
        pg_pid = _ensure_postgres(settings, step)
        postgres.bootstrap(settings)
        postgres.apply_sql(sql_paths, settings=settings)
        if sql_paths:
            step(f"postgres: applied {', '.join(p.name for p in sql_paths)} as {settings.pg_user}")
        kafka_pids, kafka_reused = kafka_job.result()
        for job in connect_jobs:
            job.result()
    return pg_pid, kafka_pids, kafka_reused


def _secure_listener(settings: StackSettings, step: _Steps) -> None:
    """The SASL_SSL listener's users exist (``--secure``); say where it listens."""
    tls.ensure_users(settings, step)
    step(
        f"kafka: SASL_SSL listener on {settings.secure_bootstrap_servers}, user "
        f"{settings.secure_user}, CA {settings.secure_dir / 'ca.pem'}"
    )


def up(
    *,
    sql_files: Iterable[str | os.PathLike[str]] = (),
    topics: Iterable[TopicSpec] = (),
    connector_files: Iterable[str | os.PathLike[str]] = (),
    settings: StackSettings | None = None,
    progress: Progress = print,
    secure: bool = False,
    brokers: int | None = None,
) -> list[PartStatus]:
    """Start what is not running, reuse what is, then apply SQL, create topics, register connectors.

    Idempotent: a second call with everything healthy only checks and returns. Each step is
    reported through `progress` with the elapsed time; failures raise StackError or ConnectError
    naming the log to read (all logs are in <home>/logs/). ``secure`` (or CDCSYNC_SECURE) adds
    the broker's SASL_SSL listener (see :mod:`cdcsync.stack.secure`). ``brokers`` (or
    CDCSYNC_BROKERS) above 1 starts a KRaft cluster of that many nodes on loopback (node n on
    the base ports + 100*(n-1)) whose topics have replication factor min(brokers, 3) and
    min.insync.replicas 2, Kafka's and Connect's internal topics included.
    """
    settings = settings or StackSettings()
    if secure and not settings.secure:
        settings = settings.model_copy(update={"secure": True})
    if brokers is not None:
        settings = _with_brokers(settings, brokers)
    if settings.secure and settings.brokers > 1:
        raise StackError("--secure runs on the single broker only; drop --brokers or --secure")
    kafka.check_formatted_for(settings)
    step = _Steps(progress)
    if settings.secure:
        tls.ensure_certificates(settings, step)
    sql_paths = [Path(f) for f in sql_files]
    topic_specs = list(topics)
    connectors = [load(f) for f in connector_files]  # fail on a bad file before starting anything

    pg_pid, kafka_pids, kafka_reused = _start_processes(settings, sql_paths, step)

    kafka.wait_healthy(settings, kafka_pids)
    step(
        f"kafka: {'reusing' if kafka_reused else 'ready,'} pid {', '.join(map(str, kafka_pids))} "
        f"on {settings.bootstrap_servers}"
    )
    if settings.secure:
        _secure_listener(settings, step)
    created = kafka.ensure_topics(
        topic_specs, settings=settings, replication_factor=settings.replication_factor
    )
    if topic_specs:
        step(f"kafka: topics ok ({'created ' + ', '.join(created) if created else 'all existed'})")

    connect_pid = _ensure_connect(settings, [c.connector_class for c in connectors], step)
    for connector in connectors:
        assert connector.path is not None
        register(settings.connect_url, connector.path, timeout=settings.start_timeout)
        step(f"connect: connector {connector.name} RUNNING")

    step(f"stack up in {step.elapsed:.1f}s; logs in {settings.logs_dir}")
    return [
        PartStatus("postgres", True, pg_pid, f"{settings.pg_host}:{settings.pg_port}"),
        *(
            PartStatus(_node_name(settings, node), True, pid, _node_address(settings, node))
            for node, pid in zip(settings.nodes, kafka_pids, strict=True)
        ),
        PartStatus(
            "connect",
            True,
            connect_pid,
            settings.connect_url,
            ", ".join(c.name for c in connectors),
        ),
    ]


def down(
    *, wipe: bool = False, settings: StackSettings | None = None, progress: Progress = print
) -> None:
    """Stop what `up` started (pid files): Connect, then Kafka, then PostgreSQL.

    With wipe=True also drop the replication slots (when PostgreSQL still answers) and delete
    the PostgreSQL cluster and Kafka's data, which holds Connect's offsets, configs and statuses.
    """
    settings = _as_formatted(settings or StackSettings())
    step = _Steps(progress)
    step("connect: stopped" if connect_worker.stop(settings) else "connect: was not running")
    if wipe and postgres.running_pid(settings) is not None and postgres.healthy(settings):
        try:
            dropped = postgres.drop_replication_slots(settings)
            step(f"postgres: dropped replication slots {', '.join(dropped) or '(none)'}")
        except (StackError, psycopg.Error) as exc:
            step(f"postgres: could not drop replication slots ({exc}); the data dir goes anyway")
    step("kafka: stopped" if kafka.stop(settings) else "kafka: was not running")
    step("postgres: stopped" if postgres.stop(settings) else "postgres: was not running")
    if wipe:
        kafka_data = [settings.node_dir(node) / "data" for node in settings.nodes]
        for path in (settings.pg_dir, *kafka_data, settings.connect_dir):
            if path.exists():
                shutil.rmtree(path)
                step(f"wiped {path}")
    step(f"stack down in {step.elapsed:.1f}s")


def _as_formatted(settings: StackSettings) -> StackSettings:
    """The settings with as many brokers as the home's Kafka data was formatted for, so that
    `down` and `status` find every node of a cluster without being told its size."""
    return _with_brokers(settings, len(kafka.known_nodes(settings)))


def _with_brokers(settings: StackSettings, brokers: int) -> StackSettings:
    if brokers == settings.brokers:
        return settings
    return StackSettings.model_validate(settings.model_dump() | {"brokers": brokers})


def _pg_detail(settings: StackSettings) -> str:
    try:
        with psycopg.connect(postgres.admin_dsn(settings), connect_timeout=2) as conn:
            slots = conn.execute(
                "SELECT slot_name, active FROM pg_replication_slots ORDER BY slot_name"
            ).fetchall()
    except psycopg.Error as exc:
        return f"not answering: {exc}".splitlines()[0]
    names = ", ".join(f"{name}{'' if active else ' (inactive)'}" for name, active in slots)
    return f"slots: {names or 'none'}"


def _connect_detail(settings: StackSettings) -> str:
    try:
        parts = []
        for name in list_connectors(settings.connect_url):
            state = connector_status(settings.connect_url, name) or {}
            tasks = [t.get("state", "?") for t in state.get("tasks", [])]
            parts.append(
                f"{name}={state.get('connector', {}).get('state', '?')} "
                f"tasks={'/'.join(tasks) or '-'}"
            )
    except CdcsyncError as exc:
        return str(exc).splitlines()[0]
    return ", ".join(parts) or "no connectors"


def status(*, settings: StackSettings | None = None) -> list[PartStatus]:
    """Each part: whether its pid is ours and alive and its health check passes, plus detail."""
    settings = _as_formatted(settings or StackSettings())
    result = []
    pid = postgres.running_pid(settings)
    ok = pid is not None and postgres.healthy(settings)
    result.append(
        PartStatus(
            "postgres",
            ok,
            pid,
            f"{settings.pg_host}:{settings.pg_port}",
            _pg_detail(settings) if ok else "",
        )
    )
    active = kafka.active_brokers(settings, timeout=3.0)
    for node in settings.nodes:
        pid = kafka.pidfile(settings, node).live_pid()
        ok = pid is not None and node in active
        of = "" if settings.brokers == 1 else f", node {node} of {settings.brokers}"
        result.append(
            PartStatus(
                _node_name(settings, node),
                ok,
                pid,
                _node_address(settings, node),
                f"Kafka {KAFKA_VERSION} KRaft{of}",
            )
        )
    pid = connect_worker.pidfile(settings).live_pid()
    ok = pid is not None and connect_worker.healthy(settings)
    detail = _connect_detail(settings) if ok else f"Debezium {DEBEZIUM_VERSION}"
    result.append(PartStatus("connect", ok, pid, settings.connect_url, detail))
    return result


def format_status(statuses: Iterable[PartStatus]) -> str:
    """A small aligned table of statuses for terminals."""
    rows = [("part", "state", "pid", "address", "detail")]
    for s in statuses:
        rows.append(
            (s.name, "running" if s.running else "stopped", str(s.pid or "-"), s.address, s.detail)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        (
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        ).rstrip()
        for row in rows
    )
