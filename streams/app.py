"""The Faust application: built from the configuration, run by ``cdcsync``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cdcsync.agents.build import build_syncs, register_agents
from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import Config
from cdcsync.streams import cli, commands, consumer
from cdcsync.streams.audit import TopicAuditor
from cdcsync.streams.config import default_config_path, load_config
from cdcsync.streams.guard import WebGuard
from cdcsync.streams.kafka_auth import broker_credentials, check_credentials
from cdcsync.streams.preflight import preflight
from cdcsync.streams.sync_app import SyncApp
from cdcsync.streams.tables import declare_links, declare_polled, declare_refs, declare_tables
from cdcsync.streams.topics import declare_topics
from cdcsync.streams.web import configure_web, register_pages

__all__ = ["DISCOVERED_COMMANDS", "create_app", "main"]

#: The app's ``autodiscover`` list: modules above streams that add commands to the CLI
#: (``cdcsync.streams.commands.support.command``), imported when the CLI starts.
DISCOVERED_COMMANDS = ["cdcsync.demo.command"]


def create_app(config: Config, *, config_path: Path | None = None) -> SyncApp:
    """Build the app: topics, tables, one sync agent per entity, commands, web endpoints."""
    guard = WebGuard(config.app.web)
    app = SyncApp(
        config,
        config_path=config_path,
        broker=config.app.broker,
        broker_credentials=broker_credentials(config.app.security),
        store=config.app.store,
        topic_partitions=config.topics.partitions,
        autodiscover=DISCOVERED_COMMANDS,
        # Given, or Faust guesses it from argv[0] when a command runs and scans that package.
        origin=__name__,
        datadir=config.app.datadir,
        web_port=config.app.web_port,
        consumer_auto_offset_reset=config.app.auto_offset_reset,
        producer_acks=-1,
        broker_session_timeout=config.app.session_timeout_s,
        broker_heartbeat_interval=config.app.heartbeat_interval_s,
    )
    configure_web(app, config.app.web, guard)
    # Faust's seeks back to the committed offsets leave gaps: see streams.consumer.
    consumer.install(app)
    topics = declare_topics(app, config)
    tables = declare_tables(app, config)
    app.syncs = build_syncs(
        config,
        topics,
        tables,
        declare_refs(app, config),
        links=declare_links(app, config),
        polled=declare_polled(app, config),
        auditor=TopicAuditor(topics.audit),
    )
    register_agents(app, config, app.syncs)
    commands.register(app, config)
    register_pages(app, config, topics=topics, tables=tables, guard=guard)
    return app


def _worker_app(path: Path) -> SyncApp:
    """The app of the file at ``path``; for ``worker``, checked before any event is read."""
    config = load_config(path)
    if sys.argv[1:2] != ["local"]:  # `local up` may be what starts the broker
        check_credentials(config)  # a wrong password stops here, not in endless retries
    app = create_app(config, config_path=path)
    if sys.argv[1:2] == ["worker"]:
        preflight(config, path, {name: sync.mapper for name, sync in app.syncs.items()})
        for name in config.enabled_entities():
            _ = app.syncs[name].sink  # secrets are read before any event
    return app


def main() -> None:
    """Entry point of the ``cdcsync`` command: worker and operator commands in one CLI.

    Help and the version need no configuration: when the file cannot be read,
    ``--help`` still lists every command (those of an app without entities).
    """
    cli.present()
    try:
        app = _worker_app(default_config_path())
    except ConfigurationError as exc:
        if not cli.asks_only_for_help(sys.argv[1:]):
            sys.exit(f"cdcsync: configuration error: {exc}")
        if "--version" not in sys.argv[1:]:
            click.echo(f"cdcsync: configuration error (commands need it): {exc}\n", err=True)
        app = create_app(Config(entities={}))
    app.main()
