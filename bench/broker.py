"""Where the bench's and the soak's Kafka clients connect, and how they authenticate.

Without ``--config`` that is the local stack's PLAINTEXT listener, as always; with it,
the ``app.broker`` and ``app.security`` of that cdcsync configuration (for example the
SASL_SSL listener of ``cdcsync local up --secure``). PostgreSQL and Kafka Connect stay
the local stack's, so the broker must be the one its Connect worker writes to. Every
Kafka client of the bench and the soak is made here, and the worker configurations
they write carry the same two settings (:meth:`BenchKafka.app_settings`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from cdcsync.operators.common import bootstrap_servers
from cdcsync.operators.kafka_clients import kafka_python_settings
from cdcsync.schemas.kafka import KafkaSecurity
from cdcsync.stack.kafka import TopicSpec, ensure_topics
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.config import load_config
from cdcsync.streams.kafka_auth import aiokafka_kwargs

__all__ = ["BenchKafka", "add_config_option"]

#: ``app.security`` fields naming files, made absolute in the worker configurations.
_FILES = ("ca_file", "cert_file", "key_file")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """The ``--config`` option of the bench and the soak."""
    parser.add_argument(
        "--config",
        type=Path,
        help="a cdcsync configuration whose app.broker and app.security the Kafka clients "
        "and workers use (e.g. a SASL_SSL listener); default: the local stack's plaintext one",
    )


@dataclass(frozen=True)
class BenchKafka:
    """The broker address and ``app.security`` of every Kafka client and worker of a run."""

    bootstrap_servers: str
    #: With its password resolved (``load_config``) when SASL is on.
    security: KafkaSecurity = field(default_factory=KafkaSecurity)

    @classmethod
    def of(cls, stack: StackSettings, config_path: Path | None = None) -> BenchKafka:
        """``config_path``'s broker and security, else the stack's PLAINTEXT listener."""
        if config_path is None:
            return cls(stack.bootstrap_servers)
        config = load_config(config_path)
        return cls(bootstrap_servers(config), config.app.security)

    def client_settings(self) -> dict[str, Any]:
        """kafka-python's security keyword arguments (for helpers that take ``client``)."""
        return kafka_python_settings(self.security)

    def consumer(self, **settings: Any) -> KafkaConsumer:
        """A kafka-python consumer on this broker (close it when done)."""
        return KafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, **self.client_settings(), **settings
        )

    def producer(self, **settings: Any) -> KafkaProducer:
        """A kafka-python producer on this broker (close it when done)."""
        return KafkaProducer(
            bootstrap_servers=self.bootstrap_servers, **self.client_settings(), **settings
        )

    def admin(self, client_id: str = "cdcsync-bench", **settings: Any) -> KafkaAdminClient:
        """A kafka-python admin client on this broker (close it when done)."""
        return KafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=client_id,
            **self.client_settings(),
            **settings,
        )

    def aiokafka_settings(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer and consumer: address and security."""
        return {"bootstrap_servers": self.bootstrap_servers, **aiokafka_kwargs(self.security)}

    def ensure_topics(self, specs: Iterable[TopicSpec]) -> list[str]:
        """Create the missing topics on this broker, as ``cdcsync.stack.kafka`` does."""
        return ensure_topics(specs, bootstrap=self.bootstrap_servers, client=self.client_settings())

    def app_settings(self) -> dict[str, Any]:
        """``app.broker`` and (unless PLAINTEXT) ``app.security`` for a worker configuration.

        The password stays the reference the source configuration gave (``{env: X}`` or
        ``{file: path}``), never its value; relative files become absolute, since the
        configuration is written elsewhere.
        """
        app: dict[str, Any] = {"broker": "kafka://" + self.bootstrap_servers.replace(",", ";")}
        if self.security.security_protocol == "PLAINTEXT":
            return app
        section = self.security.model_dump(mode="json", exclude_none=True)
        for name in _FILES:
            if name in section:
                section[name] = str(Path(section[name]).absolute())
        if "file" in section.get("password", {}):
            section["password"]["file"] = str(Path(section["password"]["file"]).absolute())
        return app | {"security": section}
