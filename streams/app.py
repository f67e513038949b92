"""The Faust application: built from the configuration, run by ``cdcsync``."""

from __future__ import annotations

import faust

from cdcsync.agents.sync import register_sync_agents
from cdcsync.schemas.config import Config, load_config
from cdcsync.sinks.registry import build_sink
from cdcsync.streams.tables import declare_tables
from cdcsync.streams.topics import declare_topics

__all__ = ["create_app", "main"]


def create_app(config: Config) -> faust.App:
    """Build the app: topics, tables, one sync agent per entity, the operator commands."""
    from cdcsync.streams import commands  # noqa: PLC0415 - commands import this module

    app = faust.App(
        config.app.id,
        broker=config.app.broker,
        store=config.app.store,
        topic_partitions=config.topics.partitions,
        autodiscover=False,
        web_host="127.0.0.1",
        web_port=config.app.web_port,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
    )
    topics = declare_topics(app, config)
    tables = declare_tables(app, config)
    sinks = {name: build_sink(e.target.provider, e.target.settings)
             for name, e in config.entities.items()}
    register_sync_agents(app, config, topics, tables, sinks)
    commands.register(app, config)
    return app


def main() -> None:
    """Entry point of the ``cdcsync`` command: worker and operator commands in one CLI."""
    create_app(load_config()).main()
