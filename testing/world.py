"""An entity's agent wired to in-memory sides, for tests that drive the real agent step."""

from __future__ import annotations

from typing import Any, cast

from cdcsync.agents import emit
from cdcsync.agents.sync import EntitySync
from cdcsync.mappers.fieldmap import FieldMap
from cdcsync.schemas.config import EntityConfig
from cdcsync.testing.events import Topics
from cdcsync.testing.sinks import MemorySink, MemoryWriter

__all__ = ["entity_sync"]


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
