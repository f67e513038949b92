"""Pure renderers of the stack's config files: broker, Connect worker, log4j, PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cdcsync.stack.settings import StackSettings

__all__ = [
    "CONNECT_GROUP",
    "CONNECT_TOPICS",
    "ENV_CONFIG_PROVIDER",
    "LOCAL_STORE_PASSWORD",
    "TASK_SHUTDOWN_GRACEFUL_TIMEOUT_MS",
    "broker_properties",
    "log4j_properties",
    "pg_conf",
    "pg_hba",
    "render_properties",
    "secure_listener_properties",
    "worker_properties",
]

#: Connect's own storage topics; they hold connector configs, offsets and statuses.
CONNECT_TOPICS = {
    "config": "cdcsync-connect-configs",
    "offset": "cdcsync-connect-offsets",
    "status": "cdcsync-connect-status",
}
CONNECT_GROUP = "cdcsync-connect"
#: How long Connect waits for a task to stop (its default is 5 s): the longest broker outage
#: after which Debezium resumes by itself (see worker_properties).
TASK_SHUTDOWN_GRACEFUL_TIMEOUT_MS = 10 * 60 * 1000
#: Lets connector JSON say ${env:CDCSYNC_PG_PASSWORD} instead of holding the secret.
ENV_CONFIG_PROVIDER = "org.apache.kafka.common.config.provider.EnvVarConfigProvider"


def _escape(text: str, *, key: bool) -> str:
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch in "=:#!" and key:
            out.append("\\" + ch)
        elif ch == " " and (key or i == 0):
            out.append("\\ ")
        elif ord(ch) > 0x7E:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def render_properties(props: Mapping[str, object], *, header: str = "") -> str:
    """Java .properties text: one `key=value` per line, escaped, in the given order."""
    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in props.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        lines.append(f"{_escape(str(key), key=True)}={_escape(str(value), key=False)}")
    return "\n".join(lines) + "\n"


def broker_properties(settings: StackSettings, node: int = 1) -> dict[str, object]:
    """KRaft combined broker+controller on loopback: the single node, or node ``node`` of a
    cluster of ``settings.brokers`` voters (replication factor up to 3, min.insync.replicas 2).
    """
    host = settings.host
    port, controller = settings.node_ports(node)
    voters = ",".join(f"{n}@{host}:{settings.node_ports(n)[1]}" for n in settings.nodes)
    copies, min_isr = settings.replication_factor, settings.min_insync_replicas
    return {
        "process.roles": "broker,controller",
        "node.id": node,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": settings.node_dir(node) / "data",
        "num.partitions": settings.partitions,
        # For topics created without a replication factor: Debezium's heartbeat and signal
        # topics (the connector's topic.creation.default.replication.factor is -1).
        "default.replication.factor": copies,
        "offsets.topic.replication.factor": copies,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": copies,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": 4,
        "min.insync.replicas": min_isr,
        "group.initial.rebalance.delay.ms": 0,
        "auto.create.topics.enable": False,
        "delete.topic.enable": True,
        "log.retention.hours": 168,
        "log.segment.bytes": 64 * 1024 * 1024,
        "num.network.threads": 2,
        "num.io.threads": 4,
        **(secure_listener_properties(settings) if settings.secure else {}),
    }


#: Password of the local stack's keystores: they hold a development CA and certificate only.
LOCAL_STORE_PASSWORD = "cdcsync-local"
_SCRAM = ("SCRAM-SHA-512", "SCRAM-SHA-256")


def secure_listener_properties(settings: StackSettings) -> dict[str, object]:
    """The SASL_SSL listener of `up --secure`: SCRAM-SHA-512/256 and PLAIN, TLS from keytool."""
    host, plain = settings.host, f"PLAINTEXT://{settings.host}:{settings.kafka_port}"
    secure = f"SASL_SSL://{host}:{settings.secure_port}"
    prefix = "listener.name.sasl_ssl."
    user, password = settings.secure_user, settings.secure_password.get_secret_value()
    props: dict[str, object] = {
        "listeners": f"{plain},CONTROLLER://{host}:{settings.controller_port},{secure}",
        "advertised.listeners": f"{plain},{secure}",
        "listener.security.protocol.map": (
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
        ),
        f"{prefix}sasl.enabled.mechanisms": ",".join((*_SCRAM, "PLAIN")),
        f"{prefix}plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{user}="{password}";'
        ),
        f"{prefix}ssl.keystore.type": "PKCS12",
        f"{prefix}ssl.keystore.location": settings.secure_dir / "broker.p12",
        f"{prefix}ssl.keystore.password": LOCAL_STORE_PASSWORD,
        f"{prefix}ssl.key.password": LOCAL_STORE_PASSWORD,
    }
    for mechanism in _SCRAM:
        props[f"{prefix}{mechanism.lower()}.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
    return props


def worker_properties(
    settings: StackSettings, *, plugin_path: Path, discovery: str = "service_load"
) -> dict[str, object]:
    """Distributed Connect worker: schemaless JSON, storage topics with the stack's replication
    factor, env config provider."""
    copies = settings.replication_factor
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": CONNECT_GROUP,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": False,
        "value.converter.schemas.enable": False,
        "config.storage.topic": CONNECT_TOPICS["config"],
        "config.storage.replication.factor": copies,
        "offset.storage.topic": CONNECT_TOPICS["offset"],
        "offset.storage.replication.factor": copies,
        "offset.storage.partitions": 5,
        "status.storage.topic": CONNECT_TOPICS["status"],
        "status.storage.replication.factor": copies,
        "status.storage.partitions": 1,
        # Debezium confirms the LSN to PostgreSQL only when offsets are flushed.
        "offset.flush.interval.ms": 1000,
        "listeners": f"http://{settings.host}:{settings.connect_port}",
        "rest.advertised.host.name": settings.host,
        "rest.advertised.port": settings.connect_port,
        "plugin.path": plugin_path,
        "plugin.discovery": discovery,
        # One worker: nobody to wait for when it restarts.
        "scheduled.rebalance.max.delay.ms": 0,
        # A broker outage longer than heartbeat.interval.ms (3 s) makes the worker revoke its
        # tasks. Debezium's SourceTask.stop() first reads the committed offsets from Kafka and
        # only then closes its replication connection; with the default 5 s Connect gives up
        # waiting, closes the task's offset reader, stop() throws before closing anything, and
        # the orphaned walsender keeps the slot "active" until the JVM exits. Waiting longer
        # lets stop() finish once the broker is back, so the restarted task gets the slot.
        "task.shutdown.graceful.timeout.ms": TASK_SHUTDOWN_GRACEFUL_TIMEOUT_MS,
        "topic.creation.enable": True,
        "config.providers": "env",
        "config.providers.env.class": ENV_CONFIG_PROVIDER,
    }


def log4j_properties(log_file: Path, *, quiet: tuple[str, ...] = ()) -> dict[str, object]:
    """log4j 1 (reload4j) config: INFO to a size-rolled file, chatty loggers at WARN."""
    props: dict[str, object] = {
        "log4j.rootLogger": "INFO, file",
        "log4j.appender.file": "org.apache.log4j.RollingFileAppender",
        "log4j.appender.file.File": log_file,
        "log4j.appender.file.MaxFileSize": "20MB",
        "log4j.appender.file.MaxBackupIndex": 3,
        "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
        "log4j.appender.file.layout.ConversionPattern": "[%d] %p %m (%c)%n",
    }
    for name in quiet:
        props[f"log4j.logger.{name}"] = "WARN"
    return props


def _pg_quote(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def pg_conf(settings: StackSettings) -> str:
    """postgresql.conf include: logical decoding on, loopback TCP only, socket inside home."""
    values: dict[str, object] = {
        "listen_addresses": _pg_quote(settings.pg_host),
        "port": settings.pg_port,
        "unix_socket_directories": _pg_quote(settings.pg_dir / "run"),
        "wal_level": "logical",
        "max_replication_slots": 10,
        "max_wal_senders": 10,
        "max_connections": 100,
        "logging_collector": "off",
        "log_line_prefix": _pg_quote("%m [%p] %q%u@%d "),
        "timezone": _pg_quote("UTC"),
    }
    body = "\n".join(f"{key} = {value}" for key, value in values.items())
    return f"# Written by cdcsync.stack on every start; edit StackSettings instead.\n{body}\n"


def pg_hba() -> str:
    """Socket: trust (the socket dir is private); TCP and replication: password (scram)."""
    return (
        "# Written by cdcsync.stack.\n"
        "local   all          all                 trust\n"
        "local   replication  all                 trust\n"
        "host    all          all          all    scram-sha-256\n"
        "host    replication  all          all    scram-sha-256\n"
    )
