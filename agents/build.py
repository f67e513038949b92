"""Build each entity's sync from the configuration and declare its agent and poller."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import faust

from cdcsync.agents.associations import ChildKeys, ParentLink
from cdcsync.agents.controls import send_due_retries, sweep_parked
from cdcsync.agents.emit import Topics
from cdcsync.agents.pipeline import KeyedPipeline
from cdcsync.agents.poller import Poller
from cdcsync.agents.sync import EntitySync
from cdcsync.mappers.loader import build_mapper
from cdcsync.schemas.config import ChildConfig, Config, EntityConfig, interpolate, target_where
from cdcsync.sinks.base import SourceWriter, counting
from cdcsync.sinks.delivery.audit import Auditor
from cdcsync.sinks.targets import build_target
from cdcsync.sinks.writeback import PostgresWriter

__all__ = ["build_syncs", "register_agents"]

log = logging.getLogger(__name__)

#: How long the agent gathers arriving records before handing them to their lanes.
TAKE_WITHIN_S = 0.01
#: Besides each change of partitions, how often the retry timer looks through the whole
#: state table for parked entities it did not store itself (recovered from the changelog).
SWEEP_S = 300.0


def _writer(config: Config, entity: EntityConfig, columns: set[str]) -> SourceWriter | None:
    if entity.source is None:
        return None
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


def _child_keys(config: Config) -> ChildKeys:
    """Reads a parent's child rows from each child's source table (one writer per child)."""
    writers: dict[str, PostgresWriter] = {}

    async def keys(child: ChildConfig, parent_key: str) -> list[str]:
        if child.entity not in writers:
            entity = config.entities[child.entity]
            assert entity.source is not None  # Config checks children have a source
            writers[child.entity] = PostgresWriter(
                config.database.url(),
                table=entity.source.table,
                schema=entity.source.schema_,
                key_column=entity.key,
                allowed_columns=(),
            )
        return await writers[child.entity].keys_where(child.column, parent_key)

    return keys


def build_syncs(
    config: Config,
    topics: Topics,
    tables: dict[str, Any],
    refs: dict[str, Any],
    *,
    links: dict[str, Any] | None = None,
    polled: dict[str, Any] | None = None,
    auditor: Auditor | None = None,
) -> dict[str, EntitySync]:
    """One :class:`EntitySync` per entity, enabled or not (operator commands read them all)."""
    syncs = {}
    for name, entity in config.entities.items():
        target = config.target(name)
        options = interpolate(
            entity.mapper_options, target.params, where=f"entities.{name}.mapper_options"
        )
        mapper = build_mapper(entity.mapping, entity.mapper, options, where=f"entities.{name}")
        syncs[name] = EntitySync(
            entity=name,
            config=entity,
            mapper=mapper,
            table=tables[name],
            refs=refs[name],
            topics=topics,
            sink_factory=functools.partial(
                build_target, target, where=target_where(config, name), auditor=auditor
            ),
            writer_factory=functools.partial(_writer, config, entity, set(mapper.pull_columns)),
            links=(links or {}).get(name),
            polled=(polled or {}).get(name),
            child_keys=_child_keys(config) if entity.children else None,
        )
    for name in config.entities:
        if (found := config.parent_of(name)) is not None:
            parent, child = found
            syncs[name].parent = ParentLink(
                parent=parent,
                child=child,
                links=(links or {})[parent],
                topic=topics.entities[parent],
                key_field=config.entities[parent].key,
                key_type=config.entities[parent].key_type,
            )
    return syncs


def register_agents(app: faust.App, config: Config, syncs: dict[str, EntitySync]) -> None:
    """Declare the agent, retry timer and poll timer of each enabled entity.

    A disabled entity gets none: its topic is not subscribed, so the group's
    committed offsets stay where they were and its pending work waits.
    """
    for name in config.enabled_entities():
        sync, entity = syncs[name], config.entities[name]
        topic = sync.topics.entities[name]
        app.agent(topic, name=f"sync-{name}", concurrency=1)(agent_for(sync, config))
        app.timer(config.app.retry_tick_s)(_retry_timer_for(sync, topic))
        if entity.poll.interval_s is not None:
            app.timer(entity.poll.interval_s, on_leader=True)(_timer_for(sync, topic))


def _timer_for(sync: EntitySync, topic: faust.TopicT) -> Any:
    poller: Poller | None = None  # built at the first tick: the sink needs its secrets

    async def poll() -> None:
        nonlocal poller
        with counting(sync.entity):  # names audit records
            try:
                poller = poller or Poller(
                    sync.entity,
                    sync.applier,
                    topic,
                    sync.refs,
                    notify=sync.emit.notify,
                    seen=sync.polled,
                )
                await poller.poll_once()
            except Exception:  # a failed poll is retried at the next interval
                log.exception(
                    "%s: poll failed; next try in %.0fs", sync.entity, sync.config.poll.interval_s
                )

    poll.__name__ = poll.__qualname__ = f"poll_{sync.entity}"
    return poll


def _retry_timer_for(sync: EntitySync, topic: faust.TopicT) -> Any:
    sent: dict[str, int] = {}  # entity id -> retry_at already signalled
    swept: tuple[frozenset[Any], float] | None = None  # the assignment swept, and when

    async def retry_due() -> None:
        nonlocal swept
        try:
            # States recovered from the changelog never went through the store's index:
            # sweep when the partitions change (a start, a rebalance), and now and then.
            assigned = _assignment(topic)
            if swept is None or swept[0] != assigned or time.monotonic() - swept[1] > SWEEP_S:
                swept = (assigned, time.monotonic())
                await sweep_parked(sync.state)
            await send_due_retries(sync.state, topic, sent)
        except Exception:  # the next tick tries again
            log.exception("%s: could not send due retries", sync.entity)

    retry_due.__name__ = retry_due.__qualname__ = f"retry_{sync.entity}"
    return retry_due


def _assignment(topic: faust.TopicT) -> frozenset[Any]:
    """The partitions the worker holds now (none while its consumer starts)."""
    try:
        return frozenset(topic.app.consumer.assignment())
    except Exception:  # ConsumerNotStarted: nothing to sweep yet
        return frozenset()


def agent_for(sync: EntitySync, config: Config) -> Callable[[faust.StreamT], Any]:
    """The Faust agent function of one entity: records go to a key-ordered pipeline."""

    # concurrency=1 keeps one lane per key; parallelism comes from the pipeline's lanes.
    async def agent(stream: faust.StreamT) -> None:
        pipeline = KeyedPipeline(
            sync.process_key, _ack, entity=sync.entity, max_in_flight=config.app.max_in_flight
        )
        try:
            # Records come in bursts (what arrived within TAKE_WITHIN_S): a burst's lanes
            # start together, so their writes share bulk calls and a key's records in it
            # coalesce; the next burst never waits for this one to end.
            # take_events is on faust's Stream but missing from its StreamT protocol.
            async for events in stream.take_events(  # type: ignore[attr-defined]
                config.app.max_in_flight, within=TAKE_WITHIN_S
            ):
                for event in events:
                    event.message.incref()  # take_events acks the burst: the lane acks it
                    await pipeline.put(event)  # raises a lane's DeliveryError
        finally:
            pipeline.close()

    agent.__name__ = agent.__qualname__ = f"sync_{sync.entity}"
    return agent


async def _ack(event: Any) -> None:
    """The pipeline's ack: the last reference on the record's message, so Faust may commit it."""
    event.ack()
