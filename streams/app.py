"""The Faust application: built from the configuration, run by ``cdcsync``."""

from __future__ import annotations

import sys

import faust

from cdcsync.agents.build import build_syncs, register_agents
from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import Config, default_config_path, load_config
from cdcsync.streams import consumer
from cdcsync.streams.audit import TopicAuditor
from cdcsync.streams.preflight import preflight
from cdcsync.streams.tables import declare_links, declare_refs, declare_tables
from cdcsync.streams.topics import declare_topics
from cdcsync.streams.web import register_pages

__all__ = ["create_app", "main"]


def create_app(config: Config) -> faust.App:
    """Build the app: topics, tables, one sync agent per entity, the operator commands."""
    from cdcsync.streams import commands

    app = faust.App(
        config.app.id,
        broker=config.app.broker,
        store=config.app.store,
        topic_partitions=config.topics.partitions,
        autodiscover=False,
        datadir=config.app.datadir,
        web_host="127.0.0.1",
        web_port=config.app.web_port,
        consumer_auto_offset_reset=config.app.auto_offset_reset,
        producer_acks=-1,
        broker_session_timeout=config.app.session_timeout_s,
        broker_heartbeat_interval=config.app.heartbeat_interval_s,
    )
    # Faust's seeks back to the committed offsets leave gaps: see streams.consumer.
    consumer.install(app)
    topics = declare_topics(app, config)
    tables = declare_tables(app, config)
    syncs = build_syncs(
        config,
        topics,
        tables,
        declare_refs(app, config),
        links=declare_links(app, config),
        auditor=TopicAuditor(topics.audit),
    )
    register_agents(app, config, syncs)
    app.conf.cdcsync_syncs = syncs  # type: ignore[attr-defined]
    commands.register(app, config)
    register_pages(app, config, topics=topics, tables=tables)
    return app


def main() -> None:
    """Entry point of the ``cdcsync`` command: worker and operator commands in one CLI."""
    try:
        path = default_config_path()
        config = load_config(path)
        app = create_app(config)
        if sys.argv[1:2] == ["worker"]:
            syncs = app.conf.cdcsync_syncs  # type: ignore[attr-defined]
            preflight(config, path, {name: sync.mapper for name, sync in syncs.items()})
            for name in config.enabled_entities():
                _ = syncs[name].sink  # secrets are read before any event
    except ConfigurationError as exc:
        sys.exit(f"cdcsync: configuration error: {exc}")
    app.main()
