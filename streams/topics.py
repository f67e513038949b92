"""The topics cdcsync reads and writes, declared once, and their specs for pre-creation."""

from __future__ import annotations

import faust

from cdcsync.agents.emit import Topics
from cdcsync.schemas.config import Config
from cdcsync.stack.kafka import TopicSpec
from cdcsync.streams.tables import webhook_ids_changelog

__all__ = ["Topics", "declare_topics", "topic_specs"]


def _raw(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    # Raw bytes in and out: we decode ourselves, so a bad record can be dead-lettered
    # instead of being dropped inside Faust's deserializer.
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        allow_empty=True,
    )


def declare_topics(app: faust.App, config: Config) -> Topics:
    """Declare the entity, results and dead-letter topics on ``app``."""
    n = config.topics.partitions
    return Topics(
        entities={name: _raw(app, e.topic, n) for name, e in config.entities.items()},
        results=_raw(app, config.topics.results, n),
        dead_letters=_raw(app, config.topics.dead_letters, n),
        conflicts=_raw(app, config.topics.conflicts, n),
        notifications=_raw(app, config.topics.notifications, n),
        audit=_raw(app, config.topics.audit, n),
    )


def topic_specs(config: Config) -> list[TopicSpec]:
    """Every topic to pre-create, all with the same partition count (co-partitioning)."""
    n = config.topics.partitions
    specs = [TopicSpec(e.topic, n) for e in config.entities.values()]
    specs += [
        TopicSpec(t, n)
        for t in (
            config.topics.results,
            config.topics.dead_letters,
            config.topics.conflicts,
            config.topics.notifications,
            config.topics.audit,
        )
    ]
    specs.append(TopicSpec(webhook_ids_changelog(config), n, compacted=True))
    for name in config.entities:
        specs.append(TopicSpec(config.changelog_topic(name), n, compacted=True))
        for table in (config.refs_table(name), config.polled_table(name)):
            specs.append(TopicSpec(config.changelog_topic(name, table), n, compacted=True))
        if config.entities[name].children:
            links = config.changelog_topic(name, config.links_table(name))
            specs.append(TopicSpec(links, n, compacted=True))
    return specs
