"""Where and how the local stack runs: ports, paths, pinned versions; from CDCSYNC_* variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEBEZIUM_VERSION",
    "KAFKA_VERSION",
    "NODE_PORT_STEP",
    "POSTGRES_MAJOR",
    "SCALA_VERSION",
    "SLF4J_VERSION",
    "StackSettings",
    "min_insync_replicas",
]

#: Kafka broker and Connect runtime: the version Debezium 3.2 builds against.
KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
#: Logging binding missing from Kafka's published POMs (without it nothing is logged).
SLF4J_VERSION = "1.7.36"
#: Latest 3.2.x Final on Maven Central when pinned; built against Kafka 3.9.1, Java 17.
DEBEZIUM_VERSION = "3.2.3.Final"
#: PostgreSQL major version the stack and docker-compose.yml expect.
POSTGRES_MAJOR = "15"
#: Node n of a cluster (`up --brokers N`) listens on kafka_port and controller_port plus
#: NODE_PORT_STEP * (n - 1): 9092/9093, 9192/9193, 9292/9293 by default.
NODE_PORT_STEP = 100


def min_insync_replicas(replication_factor: int) -> int:
    """Copies an acks=all write needs: one less than the replication factor, at most 2."""
    return max(1, min(replication_factor - 1, 2))


def _default_home() -> Path:
    return Path.cwd() / ".cdcsync"


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cdcsync"


class StackSettings(BaseSettings):
    """Local stack settings; every field can be set as CDCSYNC_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="CDCSYNC_", frozen=True, extra="ignore")

    home: Path = Field(default_factory=_default_home, description="state: data, logs, pids")
    cache: Path = Field(default_factory=_default_cache, description="downloaded jars, reused")
    host: str = Field("127.0.0.1", description="address Kafka and Connect listen on")
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_db: str = "cdcsync"
    pg_user: str = "cdcsync"
    pg_password: SecretStr = SecretStr("cdcsync")
    pg_bin: Path | None = Field(None, description="PostgreSQL server binaries; found if unset")
    pg_os_user: str = Field("postgres", description="OS user running PostgreSQL when root")
    kafka_port: int = 9092
    controller_port: int = 9093
    connect_port: int = 8083
    #: `up --secure` (or CDCSYNC_SECURE=1): a SASL_SSL listener beside the PLAINTEXT one.
    secure: bool = False
    secure_port: int = 9094
    #: The SASL user `up --secure` creates (SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN).
    secure_user: str = "cdcsync"
    secure_password: SecretStr = SecretStr("cdcsync-secret")
    partitions: int = Field(4, ge=1)
    #: `up --brokers N` (or CDCSYNC_BROKERS): a KRaft cluster of N combined broker+controller
    #: nodes, all voters; topics get replication factor min(N, 3) (see replication_factor).
    brokers: int = Field(1, ge=1, le=9)
    java_home: Path | None = Field(None, description="JDK 17+; JAVA_HOME or PATH if unset")
    start_timeout: float = Field(120.0, gt=0, description="seconds a part may take to start")

    @field_validator("home", "cache", "pg_bin", "java_home", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(os.path.abspath(value.expanduser()))

    @model_validator(mode="after")
    def _node_ports_apart(self) -> StackSettings:
        ports = [p for n in self.nodes for p in self.node_ports(n)]
        if self.brokers > 1 and len(set(ports)) != len(ports):
            raise ValueError(
                f"kafka_port {self.kafka_port} and controller_port {self.controller_port} give "
                f"{self.brokers} nodes clashing ports {ports} (node n adds "
                f"{NODE_PORT_STEP}*(n-1)); pick ports whose difference is not a multiple of "
                f"{NODE_PORT_STEP}"
            )
        return self

    # -- cluster nodes ---------------------------------------------------------------

    @property
    def nodes(self) -> range:
        """The KRaft node ids: 1 for the single broker, 1..N for `up --brokers N`."""
        return range(1, self.brokers + 1)

    def node_ports(self, node: int) -> tuple[int, int]:
        """Node ``node``'s (client, controller) ports: the base ports + NODE_PORT_STEP*(node-1)."""
        step = NODE_PORT_STEP * (node - 1)
        return self.kafka_port + step, self.controller_port + step

    def node_dir(self, node: int) -> Path:
        """Node ``node``'s config and data: kafka_dir for node 1 (the single broker's place)."""
        return self.kafka_dir if node == 1 else self.kafka_dir / f"node-{node}"

    @property
    def replication_factor(self) -> int:
        """Copies of each topic: 1 on the single broker, up to 3 on a cluster."""
        return min(self.brokers, 3)

    @property
    def min_insync_replicas(self) -> int:
        """min.insync.replicas of the stack's topics (see the function of that name)."""
        return min_insync_replicas(self.replication_factor)

    # -- addresses -------------------------------------------------------------------

    def pg_dsn(self, *, dbname: str | None = None, **extra: Any) -> str:
        """libpq connection string of the application role over TCP (includes the password)."""
        return make_conninfo(
            host=self.pg_host,
            port=self.pg_port,
            dbname=dbname or self.pg_db,
            user=self.pg_user,
            password=self.pg_password.get_secret_value(),
            **extra,
        )

    @property
    def bootstrap_servers(self) -> str:
        """Kafka bootstrap addresses for clients (kafka-python, aiokafka, Faust): every node's."""
        return ",".join(f"{self.host}:{self.node_ports(n)[0]}" for n in self.nodes)

    @property
    def secure_bootstrap_servers(self) -> str:
        """Address of the SASL_SSL listener `up --secure` adds."""
        return f"{self.host}:{self.secure_port}"

    @property
    def secure_dir(self) -> Path:
        """Certificates and the SASL password file `up --secure` makes (ca.pem for clients)."""
        return self.kafka_dir / "secure"

    @property
    def connect_url(self) -> str:
        """Base URL of the Kafka Connect REST API."""
        return f"http://{self.host}:{self.connect_port}"

    # -- state under home ------------------------------------------------------------

    @property
    def logs_dir(self) -> Path:
        """Every log of the stack: postgres.log, kafka.log, connect.log, maven.log."""
        return self.home / "logs"

    @property
    def pids_dir(self) -> Path:
        """Pid files of the processes `up` started."""
        return self.home / "pids"

    @property
    def pg_dir(self) -> Path:
        """PostgreSQL state: data cluster and unix socket directory."""
        return self.home / "postgres"

    @property
    def kafka_dir(self) -> Path:
        """Kafka broker state: config files, cluster id and the log (data) directory."""
        return self.home / "kafka"

    @property
    def connect_dir(self) -> Path:
        """Kafka Connect worker config (its state lives in Kafka topics)."""
        return self.home / "connect"

    # -- jars under cache ------------------------------------------------------------

    @property
    def kafka_libs(self) -> Path:
        """Kafka broker jars."""
        return self.cache / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def connect_libs(self) -> Path:
        """Kafka Connect runtime jars (kept apart from the broker's)."""
        return self.cache / f"connect-{KAFKA_VERSION}" / "libs"

    @property
    def plugin_path(self) -> Path:
        """Connect `plugin.path`: one subfolder per plugin (debezium-connector-postgres/)."""
        return self.cache / "connect-plugins" / f"debezium-postgres-{DEBEZIUM_VERSION}"

    def connector_env(self) -> dict[str, str]:
        """Variables the Connect worker gets so connector JSON can say ${env:CDCSYNC_PG_HOST}."""
        return {
            "CDCSYNC_PG_HOST": self.pg_host,
            "CDCSYNC_PG_PORT": str(self.pg_port),
            "CDCSYNC_PG_DB": self.pg_db,
            "CDCSYNC_PG_USER": self.pg_user,
            "CDCSYNC_PG_PASSWORD": self.pg_password.get_secret_value(),
            "CDCSYNC_PARTITIONS": str(self.partitions),
            **(
                {"CDCSYNC_SECURE_PASSWORD": self.secure_password.get_secret_value()}
                if self.secure
                else {}
            ),
        }
