"""The Faust application: built from the configuration, run by ``cdcsync``."""

from __future__ import annotations

import sys

import faust
from pydantic import ValidationError

from cdcsync.agents.build import register_agents
from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import Config, load_config
from cdcsync.sinks.registry import settings_model
from cdcsync.streams.tables import declare_refs, declare_tables
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
    topics = declare_topics(app, config)
    tables = declare_tables(app, config)
    syncs = register_agents(app, config, topics, tables, declare_refs(app, config))
    app.conf.cdcsync_syncs = syncs  # type: ignore[attr-defined]
    commands.register(app, config)
    register_pages(app, config, topics=topics, tables=tables)
    return app


def _check_targets(config: Config) -> None:
    # Fail before consuming anything: every target's settings must validate.
    for name, entity in config.entities.items():
        try:
            settings_model(entity.target.provider).model_validate(entity.target.settings)
        except ConfigurationError as exc:
            raise ConfigurationError(f"entities.{name}.target: {exc}") from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigurationError(f"entities.{name}.target.settings: {problems}") from None


def main() -> None:
    """Entry point of the ``cdcsync`` command: worker and operator commands in one CLI."""
    try:
        config = load_config()
        _check_targets(config)
        app = create_app(config)
        if sys.argv[1:2] == ["worker"]:
            for sync in app.conf.cdcsync_syncs:  # type: ignore[attr-defined]
                _ = sync.sink  # secrets and settings are checked before any event
    except ConfigurationError as exc:
        sys.exit(f"cdcsync: configuration error: {exc}")
    app.main()
