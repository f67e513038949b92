"""Key-ordered pipelining: one key in order, other keys never wait, acks only when ended."""

from __future__ import annotations

import asyncio

import pytest

from cdcsync.agents.pipeline import KeyedPipeline
from cdcsync.errors import DeliveryError, SinkTransientError
from cdcsync.schemas.config import AppConfig
from cdcsync.testing.events import Event, Feed, Message
from cdcsync.testing.world import CONTACT, entity_sync


def record(key: str, offset: int, partition: int = 0) -> Event:
    return Event(key.encode(), b"{}", Message("t", partition, offset))


class Recorder:
    """A run_key that records its steps and can hold one key until released."""

    def __init__(self, hold: str | None = None) -> None:
        self.steps: list[list[int]] = []
        self.acked: list[int] = []
        self.hold = hold
        self.release = asyncio.Event()

    async def run_key(self, events: list[Event]) -> None:
        if self.hold is not None and events[0].key == self.hold.encode():
            await self.release.wait()
        self.steps.append([e.message.offset for e in events])

    async def ack(self, event: Event) -> None:
        self.acked.append(event.message.offset)


async def test_a_held_key_does_not_hold_the_others():
    rec = Recorder(hold="a")
    pipeline = KeyedPipeline(rec.run_key, rec.ack, max_in_flight=10)
    for offset, key in enumerate("abcab"):
        await pipeline.put(record(key, offset))
    await asyncio.sleep(0.01)
    assert sorted(rec.acked) == [1, 2, 4]  # b, c and b again; a is held
    assert 0 not in rec.acked and 3 not in rec.acked
    rec.release.set()
    await pipeline.join()
    assert sorted(rec.acked) == [0, 1, 2, 3, 4]
    assert pipeline.in_flight == 0


async def test_records_queued_behind_a_running_step_come_as_one_step_in_order():
    rec = Recorder(hold="a")
    pipeline = KeyedPipeline(rec.run_key, rec.ack, max_in_flight=10)
    await pipeline.put(record("a", 0))
    await asyncio.sleep(0)  # its lane starts and is held
    for offset in range(1, 4):
        await pipeline.put(record("a", offset))
    rec.release.set()
    await pipeline.join()
    assert rec.steps == [[0], [1, 2, 3]]
    assert rec.acked == [0, 1, 2, 3]


async def test_a_partition_with_max_in_flight_unfinished_records_waits():
    rec = Recorder(hold="a")
    pipeline = KeyedPipeline(rec.run_key, rec.ack, max_in_flight=2)
    await pipeline.put(record("a", 0))
    await pipeline.put(record("a", 1))
    third = asyncio.create_task(pipeline.put(record("b", 2)))
    await pipeline.put(record("c", 5, partition=1))  # another partition has room
    await asyncio.sleep(0.01)
    assert not third.done() and rec.acked == [5]
    rec.release.set()
    await third
    await pipeline.join()
    assert sorted(rec.acked) == [0, 1, 2, 5]


async def test_a_failed_lane_leaves_its_records_unacked_and_the_next_put_raises():
    acked: list[int] = []

    async def run_key(events: list[Event]) -> None:
        if events[0].key == b"a":
            raise DeliveryError("a record was not delivered")

    async def ack(event: Event) -> None:
        acked.append(event.message.offset)

    pipeline = KeyedPipeline(run_key, ack, max_in_flight=10)
    await pipeline.put(record("a", 0))
    await pipeline.put(record("b", 1))
    await asyncio.sleep(0.01)
    assert acked == [1]
    with pytest.raises(DeliveryError):
        await pipeline.put(record("c", 2))
    with pytest.raises(DeliveryError):
        await pipeline.join()


async def test_close_cancels_the_lanes_without_acking():
    rec = Recorder(hold="a")
    pipeline = KeyedPipeline(rec.run_key, rec.ack, max_in_flight=10)
    await pipeline.put(record("a", 0))
    await asyncio.sleep(0)
    pipeline.close()
    await pipeline.join()
    assert rec.acked == []


def test_max_in_flight_must_be_positive():
    with pytest.raises(ValueError, match="max_in_flight"):
        KeyedPipeline(Recorder().run_key, Recorder().ack, max_in_flight=0)


def test_the_batch_settings_of_old_configurations_are_read_as_max_in_flight(caplog):
    app = AppConfig.model_validate({"batch_size": 64, "batch_within_s": 0.1})
    assert app.max_in_flight == 64
    assert "max_in_flight" in caplog.text and "deprecated" in caplog.text


# -- on the real agent step --------------------------------------------------------------


async def test_a_hanging_call_parks_its_entity_while_the_others_keep_ending():
    """One entity's API call hangs; every other entity's change ends while it hangs, and
    when the call times out the entity is parked."""
    sync = entity_sync(CONTACT)
    timed_out = asyncio.Event()
    create = sync.sink.create

    async def slow_create(payload):
        if payload.get("email") == "slow@x.org":
            await timed_out.wait()  # hangs until the client gives up (httpx's ReadTimeout)
            raise SinkTransientError("read timeout after 10s")
        return await create(payload)

    sync.sink.create = slow_create
    pipeline = KeyedPipeline(sync.process_key, _no_ack, max_in_flight=500)
    feed = Feed()
    await pipeline.put(feed("c", {"id": 0, "first_name": "S", "email": "slow@x.org"}))
    for i in range(1, 80):
        await pipeline.put(feed("c", {"id": i, "first_name": "N", "email": f"n{i}@x.org"}))
        await asyncio.sleep(0)
    await asyncio.wait_for(_results(sync, 79), timeout=30)
    assert not timed_out.is_set() and pipeline.in_flight == 1  # only the slow one is left
    timed_out.set()
    await pipeline.join()
    assert [r["entity_id"] for r in sync.topics.results.sent] == [str(i) for i in range(1, 80)]
    state = sync.state.load("0")
    assert state is not None and state.status == "retrying"


async def _results(sync, count: int) -> None:
    while len(sync.topics.results.sent) < count:
        await asyncio.sleep(0.01)


async def _no_ack(event: Event) -> None:
    return None


async def test_a_full_partition_names_the_steps_holding_it(caplog):
    rec = Recorder(hold="a")
    pipeline = KeyedPipeline(rec.run_key, rec.ack, max_in_flight=1, stall_report_s=0.05)
    await pipeline.put(record("a", 7))
    blocked = asyncio.create_task(pipeline.put(record("b", 8)))
    await asyncio.sleep(0.12)
    assert not blocked.done()
    assert "has had 1 records in flight" in caplog.text
    assert "key b'a': 1 record(s) from t[0]@7" in caplog.text
    assert (
        "waiting in wait (locks.py" in caplog.text and "<- run_key (test_pipeline.py" in caplog.text
    )
    rec.release.set()
    await blocked
    await pipeline.join()
    assert pipeline.stalled(0) == []
