"""Property: random interleavings of edits on both sides converge, once, without ping-pong.

Both sides are in memory (``cdcsync.testing``), the topic is one ordered queue
(one partition), the source table emits a change for every write as Debezium
does, and the real agent step, decision and poller run on them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cdcsync.agents.poller import Poller
from cdcsync.agents.sync import EntitySync
from cdcsync.schemas.config import EntityConfig
from cdcsync.schemas.envelope import encode_key
from cdcsync.testing.events import Partition, Topics, debezium_value
from cdcsync.testing.sinks import MemorySink, MemoryWriter
from cdcsync.testing.world import entity_sync

IDS = ["1", "2", "3"]
NAMES = ["Ada", "Bo", "Cy", "Di"]


def world(policy: str) -> tuple[EntitySync, Poller, Partition, MemorySink, MemoryWriter]:
    queue = Partition()

    def cdc(op: str, entity_id: str, before: Any, after: Any) -> None:
        queue.append(encode_key("id", int(entity_id)), debezium_value(op, before, after))

    sink, writer = MemorySink(), MemoryWriter(cdc)
    config = EntityConfig(
        topic="t",
        natural_key=["email"],
        target={"provider": "memory"},
        mapping={"name": "name", "email": "email"},
        source={"table": "t"},
        policies={"conflict": policy},
    )
    topics = Topics(queue, queue, queue, queue, queue)
    sync = entity_sync(config, sink=sink, writer=writer, topics=topics, entity="t")
    return sync, Poller(sync.entity, sync.applier, queue, sync.refs), queue, sink, writer


async def drain(sync: EntitySync, queue: Partition, limit: int | None = None) -> None:
    n = 0
    while queue.events and (limit is None or n < limit):
        await sync.process(queue.events.pop(0))
        n += 1


ops = st.lists(
    st.one_of(
        st.tuples(st.just("db"), st.sampled_from(IDS), st.sampled_from(NAMES)),
        st.tuples(st.just("api"), st.sampled_from(IDS), st.sampled_from(NAMES)),
        st.tuples(st.just("process"), st.integers(1, 4)),
        st.tuples(st.just("poll")),
    ),
    max_size=25,
)


async def scenario(policy: str, steps: list[tuple[Any, ...]]) -> None:
    sync, poller, queue, sink, writer = world(policy)
    for entity_id in IDS:  # every entity exists on both sides before the edits start
        writer.edit(entity_id, {"name": "Start", "email": f"{entity_id}@x.org"})
    await drain(sync, queue)
    await poller.poll_once()
    await drain(sync, queue)
    writes_before = sink.writes + writer.writes
    edits = 0
    for step in steps:
        if step[0] == "db":
            writer.edit(step[1], {"name": step[2]})
            edits += 1
        elif step[0] == "api":
            external_id = sync.table[step[1]]["external_id"]
            sink.edit(external_id, {"name": step[2]})
            edits += 1
        elif step[0] == "process":
            await drain(sync, queue, step[1])
        else:
            await poller.poll_once()

    for _ in range(6):  # quiescence: process everything, poll, until nothing new comes
        await drain(sync, queue)
        await poller.poll_once()
        if not queue.events:
            break
    assert not queue.events, "no quiescence: the sides keep changing each other (ping-pong)"

    letters = [e for e in queue.sent if e["kind"] == "dead_letter"]
    assert letters == []
    assert len(sink.objects) == len(IDS), "an entity was created twice externally"
    for entity_id in IDS:
        state = sync.table[entity_id]
        assert state["status"] == "synced"
        row = writer.rows[entity_id]
        assert sink.objects[state["external_id"]] == {"name": row["name"], "email": row["email"]}
    # Each edit costs a bounded number of writes: no loop, no ping-pong.
    assert sink.writes + writer.writes - writes_before <= 2 * edits


@settings(max_examples=500, deadline=None)
@given(steps=ops, policy=st.sampled_from(["source_wins", "target_wins"]))
def test_edits_on_both_sides_converge_without_ping_pong(steps, policy):
    asyncio.run(scenario(policy, steps))


def test_db_edit_racing_an_api_edit_keeps_the_source_under_source_wins():
    async def run() -> None:
        sync, poller, queue, sink, writer = world("source_wins")
        writer.edit("1", {"name": "Start", "email": "1@x.org"})
        await drain(sync, queue)
        external_id = sync.table["1"]["external_id"]
        sink.edit(external_id, {"name": "FromApi"})
        await poller.poll_once()  # the external change is queued first...
        writer.edit("1", {"name": "FromDb"})  # ...then the row changes before it is applied
        await drain(sync, queue)
        await poller.poll_once()
        await drain(sync, queue)
        assert writer.rows["1"]["name"] == "FromDb"
        assert sink.objects[external_id]["name"] == "FromDb"

    asyncio.run(run())


def test_db_edit_racing_an_api_edit_keeps_the_target_under_target_wins():
    async def run() -> None:
        sync, poller, queue, sink, writer = world("target_wins")
        writer.edit("1", {"name": "Start", "email": "1@x.org"})
        await drain(sync, queue)
        external_id = sync.table["1"]["external_id"]
        writer.edit("1", {"name": "FromDb"})  # queued, not processed yet
        sink.edit(external_id, {"name": "FromApi"})
        await drain(sync, queue)  # the push meets If-Match failure: target wins
        await poller.poll_once()
        await drain(sync, queue)
        assert writer.rows["1"]["name"] == "FromApi"
        assert sink.objects[external_id]["name"] == "FromApi"

    asyncio.run(run())


def test_a_poll_record_of_a_version_we_already_replaced_is_not_pulled_back():
    async def run() -> None:
        sync, poller, queue, sink, writer = world("source_wins")
        writer.edit("1", {"name": "Start", "email": "1@x.org"})
        await drain(sync, queue)
        writer.edit("1", {"name": "First"})
        await drain(sync, queue)
        await poller.poll_once()  # sees the version of "First"...
        writer.edit("1", {"name": "Second"})  # ...which our next push replaces first
        await drain(sync, queue)
        await poller.poll_once()
        await drain(sync, queue)
        external_id = sync.table["1"]["external_id"]
        assert writer.rows["1"]["name"] == sink.objects[external_id]["name"] == "Second"
        actions = [e["action"] for e in queue.sent if e["kind"] == "result"]
        assert "pull" not in actions, actions

    asyncio.run(run())
