"""Local Kafka (KRaft, one node or a loopback cluster, Maven Central jars) and topic admin.

Node 1 keeps the single broker's files (<home>/kafka/server.properties, data/, logs/kafka.log,
pids/kafka.pid); node n of `up --brokers N` has <home>/kafka/node-n/, kafka-n.log, kafka-n.pid.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, for_code

from cdcsync.errors import StackError
from cdcsync.stack.config_files import broker_properties, log4j_properties, render_properties
from cdcsync.stack.processes import (
    PidFile,
    Progress,
    check_port_free,
    is_alive,
    start_detached,
    stop_pid,
    tail,
    wait_until,
)
from cdcsync.stack.settings import StackSettings, min_insync_replicas

__all__ = [
    "TopicSpec",
    "active_brokers",
    "admin_client",
    "answers_with_brokers",
    "check_formatted_for",
    "cluster_id",
    "config_current",
    "ensure_topics",
    "existing_topics",
    "formatted_brokers",
    "healthy",
    "java",
    "known_nodes",
    "launch",
    "log_path",
    "pidfile",
    "plan_topics",
    "stop",
    "stop_node",
    "topic_configs",
    "wait_healthy",
]

log = logging.getLogger(__name__)

_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    """A topic the stack must have: its name, partition count and whether it is compacted."""

    name: str
    partitions: int
    compacted: bool = False

    def __post_init__(self) -> None:
        if not _TOPIC_NAME.match(self.name) or self.name in (".", ".."):
            raise ValueError(f"invalid Kafka topic name {self.name!r}: use 1-249 of [a-zA-Z0-9._-]")
        if self.partitions < 1:
            raise ValueError(f"topic {self.name}: partitions must be >= 1, not {self.partitions}")

    @property
    def configs(self) -> dict[str, str]:
        """Topic-level configs for creation."""
        return {"cleanup.policy": "compact"} if self.compacted else {}


def plan_topics(specs: Iterable[TopicSpec], existing: Mapping[str, int]) -> list[TopicSpec]:
    """The specs still to create; StackError if a spec conflicts with another or with the broker."""
    wanted: dict[str, TopicSpec] = {}
    for spec in specs:
        seen = wanted.get(spec.name)
        if seen is not None and seen != spec:
            raise StackError(
                f"topic {spec.name} is declared twice with different settings: {seen} vs {spec}"
            )
        wanted[spec.name] = spec
    missing: list[TopicSpec] = []
    for spec in wanted.values():
        have = existing.get(spec.name)
        if have is None:
            missing.append(spec)
        elif have != spec.partitions:
            raise StackError(
                f"topic {spec.name} exists with {have} partitions but {spec.partitions} are "
                "configured; keys would land on other partitions than the agents' tables expect. "
                f"Either set the partition count to {have} (CDCSYNC_PARTITIONS={have}) or delete "
                "the topic and let `up` "
                "recreate it (`python -m cdcsync.stack down --wipe` wipes all local Kafka data)"
            )
    return missing


def java(settings: StackSettings) -> str:
    """The java launcher: CDCSYNC_JAVA_HOME, JAVA_HOME, or PATH."""
    for home in (settings.java_home, os.environ.get("JAVA_HOME")):
        if home and (Path(home) / "bin" / "java").is_file():
            return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise StackError(
            "java not found; install a JDK 17 (apt-get install openjdk-17-jre-headless)"
        )
    return found


def _suffix(node: int) -> str:
    return "" if node == 1 else f"-{node}"


def _server_properties(settings: StackSettings, node: int = 1) -> Path:
    return settings.node_dir(node) / "server.properties"


def log_path(settings: StackSettings, node: int = 1) -> Path:
    """Node ``node``'s log: <home>/logs/kafka.log for node 1, kafka-<node>.log for the others."""
    return settings.logs_dir / f"kafka{_suffix(node)}.log"


def pidfile(settings: StackSettings, node: int = 1) -> PidFile:
    """Pid file of a node `up` started; its server.properties path proves the pid is ours."""
    return PidFile(
        settings.pids_dir / f"kafka{_suffix(node)}.pid",
        marker=str(_server_properties(settings, node)),
    )


def _brokers_file(settings: StackSettings) -> Path:
    return settings.kafka_dir / "brokers"


def formatted_brokers(settings: StackSettings) -> int | None:
    """How many nodes the home's Kafka data was formatted for (None: not formatted yet)."""
    if not (settings.kafka_dir / "data" / "meta.properties").is_file():
        return None
    try:
        return int(_brokers_file(settings).read_text())
    except (OSError, ValueError):
        return 1  # formatted before clusters existed: the single broker


def check_formatted_for(settings: StackSettings) -> None:
    """StackError if the home's Kafka data belongs to a cluster of another size."""
    formatted = formatted_brokers(settings)
    if formatted is not None and formatted != settings.brokers:
        raise StackError(
            f"the Kafka data in {settings.kafka_dir} is formatted for {formatted} broker(s), not "
            f"{settings.brokers}: run `local up --brokers {formatted}`, or `local down --wipe` "
            "first (it deletes all local Kafka data), or use another CDCSYNC_HOME"
        )


def known_nodes(settings: StackSettings) -> range:
    """The nodes of this home: the settings' or, if more, those its data was formatted for."""
    return range(1, max(settings.brokers, formatted_brokers(settings) or 1) + 1)


def _new_cluster_id() -> str:
    """A Kafka Uuid in its base64url form, like `StorageTool random-uuid` prints."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def cluster_id(settings: StackSettings) -> str:
    """The cluster id, generated on first use and kept in <home>/kafka/cluster.id."""
    path = settings.kafka_dir / "cluster.id"
    if path.is_file():
        return path.read_text().strip()
    settings.kafka_dir.mkdir(parents=True, exist_ok=True)
    value = _new_cluster_id()
    path.write_text(value + "\n")
    return value


def _jvm(settings: StackSettings, libs: Path, main: str, *args: str, node: int = 1) -> list[str]:
    return [
        java(settings),
        "-Xms256m",
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{settings.node_dir(node) / 'log4j.properties'}",
        f"-Dkafka.logs.dir={settings.logs_dir}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def _render(settings: StackSettings, node: int) -> str:
    header = "Written by cdcsync.stack on every start; edit StackSettings instead."
    return render_properties(broker_properties(settings, node), header=header)


def config_current(settings: StackSettings, node: int = 1) -> bool:
    """True if the node was started with the config the settings give now."""
    try:
        return _server_properties(settings, node).read_text() == _render(settings, node)
    except OSError:
        return False


def _write_config(settings: StackSettings, node: int) -> Path:
    settings.node_dir(node).mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    props = _server_properties(settings, node)
    props.write_text(_render(settings, node))
    quiet = (
        "kafka.controller",
        "org.apache.kafka.controller",
        "state.change.logger",
        "kafka.log.LogCleaner",
    )
    (settings.node_dir(node) / "log4j.properties").write_text(
        render_properties(log4j_properties(log_path(settings, node), quiet=quiet))
    )
    return props


def _format_storage(settings: StackSettings, libs: Path, progress: Progress, node: int) -> None:
    if (settings.node_dir(node) / "data" / "meta.properties").is_file():
        return
    progress(f"kafka: formatting KRaft storage{'' if node == 1 else f' of node {node}'}")
    if node == 1:  # before node 1's meta.properties exists: formatted_brokers never guesses
        _brokers_file(settings).write_text(f"{settings.brokers}\n")
    argv = _jvm(
        settings,
        libs,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id(settings),
        "-c",
        str(_server_properties(settings, node)),
        "--ignore-formatted",
        node=node,
    )
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"kafka storage format failed: {(result.stderr or result.stdout).strip()}")


def launch(settings: StackSettings, libs: Path, progress: Progress = print, node: int = 1) -> int:
    """Write config, format storage once and start node ``node`` detached; returns its pid."""
    check_formatted_for(settings)
    kafka_port, controller_port = settings.node_ports(node)
    for port, var in (
        (kafka_port, "CDCSYNC_KAFKA_PORT"),
        (controller_port, "CDCSYNC_CONTROLLER_PORT"),
        *([(settings.secure_port, "CDCSYNC_SECURE_PORT")] if settings.secure else []),
    ):
        check_port_free(settings.host, port, what=f"kafka node {node}", env_var=var)
    props = _write_config(settings, node)
    _format_storage(settings, libs, progress, node)
    argv = _jvm(settings, libs, "kafka.Kafka", str(props), node=node)
    out = settings.logs_dir / f"kafka{_suffix(node)}.out"
    return start_detached(argv, pidfile=pidfile(settings, node), log_path=out)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def admin_client(
    settings: StackSettings,
    *,
    timeout: float = 10.0,
    bootstrap: str | None = None,
    client: Mapping[str, Any] | None = None,
) -> KafkaAdminClient:
    """A kafka-python admin client for the local broker (close it when done); ``bootstrap``
    narrows the nodes it first asks (default: every node's address), ``client`` adds
    settings (``app.security``'s, from ``operators.kafka_clients.kafka_python_settings``)."""
    return KafkaAdminClient(
        bootstrap_servers=bootstrap or settings.bootstrap_servers,
        client_id="cdcsync-stack",
        request_timeout_ms=int(timeout * 1000),
        api_version_auto_timeout_ms=int(min(timeout, 5.0) * 1000),
        **(client or {}),
    )


def active_brokers(settings: StackSettings, *, timeout: float = 5.0) -> set[int]:
    """The nodes that listen and that the cluster lists as active brokers (a node killed a
    moment ago stays listed until its session times out)."""
    listening = {n: settings.node_ports(n)[0] for n in settings.nodes}
    listening = {n: port for n, port in listening.items() if _port_open(settings.host, port)}
    if not listening:
        return set()
    # Bootstrapping from listening nodes only: no connection errors logged for the others.
    bootstrap = ",".join(f"{settings.host}:{port}" for port in listening.values())
    try:
        admin = admin_client(settings, timeout=timeout, bootstrap=bootstrap)
    except KafkaError:
        return set()
    try:
        listed = {int(b["node_id"]) for b in admin.describe_cluster().get("brokers") or ()}
    except KafkaError:
        return set()
    finally:
        admin.close()
    return listed & set(listening)


def healthy(settings: StackSettings, *, timeout: float = 5.0) -> bool:
    """True if the broker answers metadata and lists every node as an active broker."""
    return set(settings.nodes) <= active_brokers(settings, timeout=timeout)


def answers_with_brokers(admin: KafkaAdminClient) -> bool:
    """True if the cluster behind ``admin`` names its brokers; closes ``admin``."""
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except KafkaError:
        return False
    finally:
        admin.close()


def wait_healthy(settings: StackSettings, pid: int | Iterable[int] | None) -> float:
    """Block until every node is an active broker; StackError with the log tail if one of the
    ``pid`` processes dies or the time runs out."""
    pids = [pid] if isinstance(pid, int) else list(pid or ())

    def check() -> bool:
        for node, each in zip(settings.nodes, pids, strict=False):
            if not is_alive(each):
                raise StackError(
                    f"kafka: node {node} (pid {each}) exited during startup; see "
                    f"{log_path(settings, node)}\n{tail(log_path(settings, node))}".rstrip()
                )
        return healthy(settings)

    return wait_until(
        check,
        what="kafka",
        timeout=settings.start_timeout,
        interval=0.3,
        log_path=log_path(settings),
    )


def existing_topics(admin: KafkaAdminClient) -> dict[str, int]:
    """Every topic on the broker with its partition count."""
    return {
        t["topic"]: len(t["partitions"]) for t in admin.describe_topics() if t["error_code"] == 0
    }


def topic_configs(spec: TopicSpec, replication_factor: int) -> dict[str, str]:
    """A topic's configs at ``replication_factor``: its own, plus min.insync.replicas."""
    configs = dict(spec.configs)
    if replication_factor > 1:
        configs.setdefault("min.insync.replicas", str(min_insync_replicas(replication_factor)))
    return configs


def ensure_topics(
    specs: Iterable[TopicSpec],
    *,
    settings: StackSettings | None = None,
    replication_factor: int = 1,
    bootstrap: str | None = None,
    client: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the missing topics, leave existing ones; StackError on a partition-count mismatch.

    ``replication_factor`` above 1 also sets ``min.insync.replicas`` to one less (2 for the
    usual 3), so an acknowledged write (the worker produces with acks=all) survives a lost
    broker. ``bootstrap`` and ``client`` as for :func:`admin_client` (a secured listener).
    """
    settings = settings or StackSettings()
    specs = list(specs)
    if not specs:
        return []
    try:
        admin = admin_client(settings, bootstrap=bootstrap, client=client)
    except KafkaError as exc:
        where = bootstrap or settings.bootstrap_servers
        raise StackError(f"kafka at {where} is not reachable: {exc}; run `up`") from exc
    try:
        missing = plan_topics(specs, existing_topics(admin))
        if not missing:
            return []
        new = [
            NewTopic(s.name, s.partitions, replication_factor,
                     topic_configs=topic_configs(s, replication_factor))
            for s in missing
        ]  # fmt: skip
        response = admin.create_topics(new, timeout_ms=30000)
        for topic, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                message = rest[0] if rest and rest[0] else for_code(code).__name__
                raise StackError(f"cannot create topic {topic}: {message}")
        created = [s.name for s in missing]
        log.info("created topics %s", created)
        return created
    finally:
        admin.close()


def stop(settings: StackSettings, *, timeout: float = 30.0) -> bool:
    """SIGTERM every node `up` started (controlled shutdown), SIGKILL after timeout; whether
    any was running. A cluster's nodes stop together: the last one would otherwise wait for
    a controller quorum that is already gone."""
    nodes = list(known_nodes(settings))
    with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="kafka-stop") as pool:
        stopped = list(pool.map(lambda n: stop_node(settings, n, timeout=timeout), nodes))
    return any(stopped)


def stop_node(settings: StackSettings, node: int = 1, *, timeout: float = 30.0) -> bool:
    """SIGTERM node ``node`` if `up` started it, SIGKILL after timeout; whether it was running."""
    pf = pidfile(settings, node)
    pid = pf.live_pid()
    if pid is None:
        pf.remove()
        return False
    if not stop_pid(pid, timeout=timeout):
        log = log_path(settings, node)
        raise StackError(f"kafka pid {pid} did not stop; see {log}\n{tail(log)}")
    pf.remove()
    return True
