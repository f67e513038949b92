"""The poller's published versions, kept across leaders: no republish of everything."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cdcsync import metrics
from cdcsync.agents.poller import Poller
from cdcsync.errors import DeliveryError
from cdcsync.testing.events import Partition, Topics
from cdcsync.testing.sinks import MemorySink
from cdcsync.testing.world import CONTACT, entity_sync


class Delivering(Partition):
    """An entity topic whose sends return delivery futures; ``fail`` makes them fail."""

    def __init__(self) -> None:
        super().__init__(topic="t")
        self.fail = False

    async def send(self, *, key: bytes, value: bytes) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(RuntimeError("broker said no"))
        else:
            await super().send(key=key, value=value)
            future.set_result(None)
        return future


async def _world(n: int):
    sink, part = MemorySink(), Delivering()
    topics = Topics(results=part, dead_letters=part, conflicts=part, notifications=part)
    sync = entity_sync(CONTACT, sink=sink, topics=topics, entity="t")
    for i in range(n):
        record = await sink.create({"firstName": f"n{i}", "email": f"{i}@x.org"})
        sync.refs[record.id] = f'{{"id":{i}}}'
    return sink, sync, part


def _published(part: Partition) -> list[str]:
    return [json.loads(e.value)["external_id"] for e in part.events]


async def test_a_new_leader_publishes_only_what_changed_since_the_last_one():
    sink, sync, part = await _world(5)
    seen: dict[str, str | None] = {}  # the polled_<entity> table both leaders read
    first = Poller(sync.entity, sync.applier, part, sync.refs, seen=seen)
    assert (await first.poll_once()).published == 5
    edited = next(iter(sink.objects))
    sink.edit(edited, {"notes": "changed while no one led"})
    part.events.clear()

    second = Poller(sync.entity, sync.applier, part, sync.refs, seen=seen)
    report = await second.poll_once()
    assert (report.listed, report.published) == (5, 1)
    assert _published(part) == [edited]


async def test_without_the_table_a_new_poller_republishes_everything():
    _, sync, part = await _world(3)
    await Poller(sync.entity, sync.applier, part, sync.refs).poll_once()
    assert (await Poller(sync.entity, sync.applier, part, sync.refs).poll_once()).published == 3


async def test_a_version_whose_record_was_not_delivered_is_published_again():
    _, sync, part = await _world(2)
    seen: dict[str, str | None] = {}
    poller = Poller(sync.entity, sync.applier, part, sync.refs, seen=seen)
    part.fail = True
    with pytest.raises(DeliveryError):
        await poller.poll_once()
    assert seen == {}  # nothing counts as seen before the broker has it
    part.fail = False
    assert (await poller.poll_once()).published == 2
    assert len(seen) == 2


async def test_a_deleted_object_is_forgotten():
    sink, sync, part = await _world(3)
    seen: dict[str, str | None] = {}
    poller = Poller(sync.entity, sync.applier, part, sync.refs, seen=seen)
    await poller.poll_once()
    gone = next(iter(sink.objects))
    del sink.objects[gone], sink.versions[gone]
    report = await poller.poll_once()
    assert report.deleted == 1 and gone not in seen and len(seen) == 2


async def test_a_record_not_linked_yet_is_published_once_its_link_arrives():
    """The quick soak lost edits this way: a new leader's refs were still recovering, the
    edited record looked unknown, and its version was kept as seen without a publish."""
    sink, sync, part = await _world(2)
    seen: dict[str, str | None] = {}
    lagging = dict(sync.refs)
    late = next(iter(sink.objects))
    del sync.refs[late]
    poller = Poller(sync.entity, sync.applier, part, sync.refs, seen=seen)
    assert (await poller.poll_once()).published == 1
    sync.refs[late] = lagging[late]  # recovered
    assert (await poller.poll_once()).published == 1
    assert _published(part)[-1] == late and late in seen


async def test_objects_unknown_to_the_poller_show_in_its_metrics():
    """A poller blind to links (stale refs) publishes nothing for those objects: the
    operator sees them as ``cdcsync_poll_objects{kind="unknown"}``."""
    sink, sync, part = await _world(3)
    del sync.refs[next(iter(sink.objects))]
    await Poller(sync.entity, sync.applier, part, sync.refs).poll_once()
    text = metrics.exposition().decode()
    assert 'cdcsync_poll_objects{entity="t",kind="unknown"} 1.0' in text
    assert 'cdcsync_poll_objects{entity="t",kind="listed"} 3.0' in text
