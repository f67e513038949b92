"""An entity's agent wired to in-memory sides, for tests that drive the real agent step."""

from __future__ import annotations

from typing import Any, cast

from cdcsync.agents import emit
from cdcsync.agents.sync import EntitySync
from cdcsync.errors import SinkTransientError
from cdcsync.mappers.fieldmap import FieldMap
from cdcsync.schemas.config import EntityConfig
from cdcsync.testing.events import Feed, Topics
from cdcsync.testing.sinks import MemorySink, MemoryWriter

__all__ = ["ADA", "CONTACT", "entity_sync", "failing_after_create"]

#: A contact entity on the in-memory sink: two mapped fields, looked up by email.
CONTACT = EntityConfig(
    retry={"max_attempts": 3},
    topic="cdcsync.contact",
    natural_key=["email"],
    mapping={"firstName": "first_name", "email": "email"},
    target={"provider": "memory"},
)
#: A contact row, as Debezium's ``after`` carries it.
ADA: dict[str, Any] = {"id": 1, "first_name": "Ada", "email": "ada@x.org", "notes": ""}


def entity_sync(
    config: EntityConfig,
    *,
    sink: MemorySink | None = None,
    writer: MemoryWriter | None = None,
    topics: Any = None,
    entity: str = "contact",
) -> EntitySync:
    """The agent step of ``entity`` with a field map, empty tables and recording topics."""
    the_sink = sink or MemorySink()
    return EntitySync(
        entity=entity,
        config=config,
        mapper=FieldMap(config.mapping),
        sink_factory=lambda: the_sink,
        writer_factory=lambda: writer,
        table={},
        refs={},
        # The recording topics stand in for Faust's: they take the same send() calls.
        topics=cast(emit.Topics, topics if topics is not None else Topics()),
    )


async def failing_after_create(config: EntityConfig = CONTACT) -> tuple[EntitySync, Feed]:
    """An agent whose contact ADA is synced, and whose next API call fails with a 503."""
    sync, feed = entity_sync(config), Feed()
    await sync.process(feed("c", ADA))  # type: ignore[arg-type]  # a fake event
    sync.sink.fail_next = [SinkTransientError("503", status_code=503)]  # type: ignore[attr-defined]
    return sync, feed
