"""``cdcsync local``: the local stack (PostgreSQL, Kafka, Kafka Connect with Debezium)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import faust
from faust.cli import argument, option

from cdcsync.connect.register import connector_files
from cdcsync.operators.common import bootstrap_servers
from cdcsync.operators.kafka_clients import kafka_python_settings
from cdcsync.schemas.config import Config
from cdcsync.stack import local as stack
from cdcsync.stack.kafka import ensure_topics
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.commands.support import failing_cleanly
from cdcsync.streams.topics import topic_specs

__all__ = ["SCHEMA_SQL", "broker_settings", "register", "stack_up"]

SCHEMA_SQL = Path(__file__).resolve().parents[2] / "demo" / "schema.sql"


def stack_up(
    config: Config, *, progress: Any = print, secure: bool = False, brokers: int | None = None
) -> None:
    """Start (or reuse) the local stack with this configuration's topics and connectors."""
    stack.up(
        sql_files=[SCHEMA_SQL],
        topics=topic_specs(config),
        connector_files=connector_files(),
        progress=progress,
        secure=secure,
        brokers=brokers,
    )


def broker_settings(config: Config) -> StackSettings:
    """Stack settings pointing at the first broker of ``app.broker`` (``kafka://host:port;...``)."""
    first = config.app.broker.split(";")[0].split(",")[0].split("://")[-1]
    host, _, port = first.rpartition(":")
    return StackSettings(host=host or first, kafka_port=int(port) if host else 9092)


def register(app: faust.App, config: Config) -> None:
    """Attach ``local`` to ``app`` (``demo`` is the demo package's: ``cdcsync.demo.command``)."""

    @app.command(
        argument("action", type=click.Choice(["up", "down", "status"])),
        option(
            "--wipe",
            is_flag=True,
            default=False,
            help="with down: also delete data, the replication slot and Connect offsets",
        ),
        option(
            "--secure",
            is_flag=True,
            default=False,
            help="with up: add a SASL_SSL listener (SCRAM/PLAIN user, keytool certificates)",
        ),
        option(
            "--brokers",
            type=click.IntRange(1, 9),
            default=None,
            help="with up: a KRaft cluster of N brokers on loopback (node n on the ports "
            "+100*(n-1)), replication factor 3 and min.insync.replicas 2 from 3 brokers",
        ),
    )
    async def local(self: Any, action: str, wipe: bool, secure: bool, brokers: int | None) -> None:
        """Run the local stack: PostgreSQL, Kafka (KRaft), Kafka Connect with Debezium."""
        if action == "up":
            stack_up(config, progress=self.say, secure=secure, brokers=brokers)
        elif action == "down":
            stack.down(wipe=wipe, progress=self.say)
        else:
            self.say(stack.format_status(stack.status()))

    @app.command(
        option(
            "--replication-factor",
            type=click.IntRange(1, 16),
            default=1,
            help="copies of each topic (production: 3, which also sets min.insync.replicas 2)",
        ),
    )
    async def topics(self: Any, replication_factor: int) -> None:
        """Create every topic this configuration needs on app.broker, as `local up` does."""
        with failing_cleanly("topics"):
            created = ensure_topics(
                topic_specs(config),
                settings=broker_settings(config),
                replication_factor=replication_factor,
                bootstrap=bootstrap_servers(config),
                client=kafka_python_settings(config.app.security),
            )
        self.say(f"topics: created {', '.join(created)}" if created else "topics: all existed")
