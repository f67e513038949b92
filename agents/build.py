"""Build each entity's sync from the configuration and declare its agent and poller."""

from __future__ import annotations

import functools
import logging
from typing import Any

import faust

from cdcsync.agents.poller import Poller
from cdcsync.agents.sync import EntitySync, agent_for
from cdcsync.mappers.loader import build_mapper
from cdcsync.schemas.config import Config, EntityConfig
from cdcsync.sinks.base import SourceWriter
from cdcsync.sinks.registry import build_sink
from cdcsync.streams.topics import Topics

__all__ = ["register_agents"]

log = logging.getLogger(__name__)


def _writer(config: Config, entity: EntityConfig, columns: set[str]) -> SourceWriter | None:
    if entity.source is None:
        return None
    from cdcsync.sinks.postgres import PostgresWriter

    status = entity.status_columns.names() if entity.status_columns else []
    allowed = set(columns)
    if entity.policies.mark_column:
        allowed.add(entity.policies.mark_column)
    return PostgresWriter(
        config.database.url(),
        table=entity.source.table,
        schema=entity.source.schema_,
        key_column=entity.key,
        allowed_columns=allowed,
        status_columns=status,
    )


def register_agents(
    app: faust.App, config: Config, topics: Topics, tables: dict[str, Any], refs: dict[str, Any]
) -> list[EntitySync]:
    """Declare one sync agent per entity, and a leader-only poll timer where configured."""
    syncs = []
    for name, entity in config.entities.items():
        mapper = build_mapper(
            entity.mapping, entity.mapper, entity.mapper_options, where=f"entities.{name}"
        )
        sync = EntitySync(
            entity=name,
            config=entity,
            mapper=mapper,
            table=tables[name],
            refs=refs[name],
            topics=topics,
            sink_factory=functools.partial(
                build_sink, entity.target.provider, entity.target.settings
            ),
            writer_factory=functools.partial(_writer, config, entity, set(mapper.pull_columns)),
        )
        syncs.append(sync)
        app.agent(topics.entities[name], name=f"sync-{name}", concurrency=1)(
            agent_for(sync, config)
        )
        app.timer(config.app.retry_tick_s)(_retry_timer_for(sync, topics.entities[name]))
        if entity.poll.interval_s is not None:
            poller = Poller(sync, topics.entities[name], refs[name])
            app.timer(entity.poll.interval_s, on_leader=True)(_timer_for(poller))
    return syncs


def _timer_for(poller: Poller) -> Any:
    async def poll() -> None:
        try:
            await poller.poll_once()
        except Exception:  # a failed poll is retried at the next interval
            log.exception(
                "%s: poll failed; next try in %.0fs",
                poller.sync.entity,
                poller.sync.config.poll.interval_s,
            )

    poll.__name__ = poll.__qualname__ = f"poll_{poller.sync.entity}"
    return poll


def _retry_timer_for(sync: EntitySync, topic: faust.TopicT) -> Any:
    sent: dict[str, int] = {}  # entity id -> retry_at already signalled

    async def retry_due() -> None:
        try:
            await sync.send_due_retries(topic, sent)
        except Exception:  # the next tick tries again
            log.exception("%s: could not send due retries", sync.entity)

    retry_due.__name__ = retry_due.__qualname__ = f"retry_{sync.entity}"
    return retry_due
