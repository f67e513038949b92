"""A write answer that already shows a concurrent edit never hides that edit from the poll."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from cdcsync.agents.poller import Poller
from cdcsync.schemas.config import EntityConfig
from cdcsync.sinks.base import ExternalRecord
from cdcsync.testing.events import Partition, Topics, debezium_value
from cdcsync.testing.sinks import MemorySink, MemoryWriter
from cdcsync.testing.world import entity_sync


class LateAnswerSink(MemorySink):
    """An API that reads the object back for its answer after another client edited it
    (json-server under load did): the answer shows that edit, not our write."""

    edit_after_next_update: dict[str, Any] | None = None

    async def update(self, external_id: str, payload: Mapping[str, Any], **kwargs: Any):
        await super().update(external_id, payload, **kwargs)
        if self.edit_after_next_update is not None:
            self.edit(external_id, self.edit_after_next_update)
            self.edit_after_next_update = None
        return ExternalRecord(external_id, self.versions[external_id],
                              dict(self.objects[external_id]))  # fmt: skip


@pytest.mark.parametrize("version", ["hash", "row_id"])
async def test_an_edit_the_write_answer_already_shows_is_still_pulled(version: str) -> None:
    part = Partition(topic="t")
    writer = MemoryWriter(
        lambda op, eid, before, after: part.append(
            json.dumps({"id": int(eid)}).replace(" ", "").encode(),
            debezium_value(op, before, after),
        )
    )
    config = EntityConfig(
        topic="t", target={"provider": "memory"}, source={"table": "t"},
        mapping={"name": "name", "email": "email"}, poll={"version": version},
    )  # fmt: skip
    sink = LateAnswerSink()
    topics = Topics(results=part, dead_letters=part, conflicts=part, notifications=part)
    sync = entity_sync(config, sink=sink, writer=writer, topics=topics, entity="t")
    poller = Poller(sync.entity, sync.applier, part, sync.refs)  # type: ignore[arg-type]

    async def drain() -> None:
        while part.events:
            await sync.process(part.events.pop(0))  # type: ignore[arg-type]

    writer.edit("1", {"name": "Alan", "email": "a@x.org"})
    await drain()
    (external_id,) = sink.objects
    sink.edit_after_next_update = {"name": "Ken"}  # someone edits right after our write
    writer.edit("1", {"name": "Alan L."})
    await drain()
    assert sink.objects[external_id]["name"] == "Ken"
    await poller.poll_once()
    await drain()
    assert writer.rows["1"]["name"] == "Ken"  # pulled, not skipped as the echo of our write
    assert sink.objects[external_id]["name"] == "Ken"
