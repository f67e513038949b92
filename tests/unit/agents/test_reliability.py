"""Holes a chaos soak finds (issue 14): each change ends in a write or a dead letter, once."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.errors import KafkaError

from cdcsync.errors import DeliveryError, SinkPermanentError, SinkTransientError
from cdcsync.schemas.config import EntityConfig
from cdcsync.schemas.envelope import ExternalChange
from cdcsync.testing.events import Feed, Topic, Topics
from cdcsync.testing.sinks import MemoryWriter
from cdcsync.testing.world import CONTACT, entity_sync, failing_after_create

CONFIG = CONTACT
ADA = {"id": 1, "first_name": "Ada", "email": "ada@x.org"}


def external(oid: str, version: str, fields: dict) -> bytes:
    change = ExternalChange(change="upsert", external_id=oid, version=version, fields=fields)
    return change.model_dump_json().encode()


async def test_changes_a_failed_carrier_superseded_are_dead_lettered_with_it():
    sync = entity_sync(CONFIG)
    feed = Feed()
    await sync.process(feed("c", ADA))
    sync.sink.fail_next = [SinkPermanentError("422 bad name", status_code=422)]
    await sync.process_batch([feed("u", {**ADA, "first_name": n}) for n in ("A2", "A3")])
    letters = [(d["source"]["offset"], d["reason"]) for d in sync.topics.dead_letters.sent]
    assert letters == [(3, "sink_permanent"), (2, "sink_permanent")]
    assert "superseded by offset 3" in sync.topics.dead_letters.sent[1]["error"]
    assert [r["action"] for r in sync.topics.results.sent] == ["create"]


async def test_changes_a_parked_carrier_superseded_queue_in_front_of_it():
    sync, feed = await failing_after_create()
    await sync.process_batch([feed("u", {**ADA, "first_name": n}) for n in ("A2", "A3", "A4")])
    assert [p.offset for p in sync.state.load("1").parked] == [2, 3, 4]
    assert [r["action"] for r in sync.topics.results.sent] == ["create"]
    retry = {"origin": "control", "command": "retry", "force": True}
    await sync.process(feed(None, ADA, value=json.dumps(retry).encode()))
    assert [r["source"]["offset"] for r in sync.topics.results.sent[1:]] == [2, 3, 4]
    assert [o["firstName"] for o in sync.sink.objects.values()] == ["A4"]


async def test_a_push_meeting_its_own_landed_write_adopts_it_instead_of_a_conflict():
    manual = CONFIG.model_copy(
        update={"policies": CONFIG.policies.model_copy(update={"conflict": "manual"})}
    )
    sync = entity_sync(manual)
    feed = Feed()
    await sync.process(feed("c", ADA))
    (oid,) = sync.sink.objects
    update = feed("u", {**ADA, "first_name": "Bo"})
    # the write landed, then the worker died before the state write: the record comes again
    await sync.sink.update(oid, {"firstName": "Bo", "email": "ada@x.org"})
    await sync.process(update)
    state = sync.state.load("1")
    assert state.status == "synced" and state.row_id == sync.sink.versions[oid]
    assert sync.topics.conflicts.sent == []
    assert "already holds this payload" in sync.topics.results.sent[-1]["reason"]


async def test_a_pull_never_writes_the_key_column():
    config = EntityConfig(
        topic="cdcsync.contact",
        mapping={"ref": "id", "firstName": "first_name"},
        target={"provider": "memory"},
        source={"table": "contact"},
    )
    writer = MemoryWriter(lambda *change: None)
    sync = entity_sync(config, writer=writer)
    feed = Feed()
    writer.rows["1"] = {"id": 1, "first_name": "Ada"}
    await sync.process(feed("c", writer.rows["1"]))
    (oid,) = sync.sink.objects
    sync.sink.edit(oid, {"ref": 999, "firstName": "Bo"})
    value = external(oid, sync.sink.versions[oid], sync.sink.objects[oid])
    await sync.process(feed(None, {"id": 1}, value=value))
    assert sync.topics.results.sent[-1]["action"] == "pull"
    assert writer.rows["1"] == {"id": 1, "first_name": "Bo"}


def parking_config(**retry: int) -> EntityConfig:
    return CONFIG.model_copy(update={"retry": CONFIG.retry.model_copy(update=retry)})


async def test_the_parked_queue_is_bounded_by_count_and_the_overflow_dead_letters():
    sync = entity_sync(parking_config(max_parked=3))
    feed = Feed()
    sync.sink.fail_next = [SinkTransientError("503", status_code=503)]
    for name in ("A1", "A2", "A3", "A4", "A5"):
        await sync.process(feed("c" if name == "A1" else "u", {**ADA, "first_name": name}))
    assert [p.offset for p in sync.state.load("1").parked] == [1, 2, 3]
    letters = [(d["source"]["offset"], d["reason"]) for d in sync.topics.dead_letters.sent]
    assert letters == [(4, "parked_overflow"), (5, "parked_overflow")]
    assert "3 parked events" in sync.topics.dead_letters.sent[0]["error"]


async def test_the_parked_queue_is_bounded_by_bytes():
    sync = entity_sync(parking_config(max_parked_bytes=400))
    feed = Feed()
    sync.sink.fail_next = [SinkTransientError("503", status_code=503)]
    await sync.process(feed("c", ADA))
    await sync.process(feed("u", {**ADA, "first_name": "x" * 300}))
    assert [p.offset for p in sync.state.load("1").parked] == [1]
    assert [d["reason"] for d in sync.topics.dead_letters.sent] == ["parked_overflow"]


async def test_a_parked_source_change_is_stored_compactly_and_still_reruns():
    sync, feed = await failing_after_create()
    update = feed("u", {**ADA, "first_name": "Bo"})
    update.value = json.dumps(
        {"op": "u", "before": ADA, "after": {**ADA, "first_name": "Bo"},
         "source": {"ts_ms": 5, "snapshot": "false", "lsn": 1, "txId": 2, "db": "x"},
         "ts_ms": 6, "transaction": None}
    ).encode()  # fmt: skip
    await sync.process(update)
    (parked,) = sync.state.load("1").parked
    assert json.loads(parked.value) == {
        "op": "u", "after": {**ADA, "first_name": "Bo"}, "source": {"ts_ms": 5}, "ts_ms": 6,
    }  # fmt: skip
    retry = {"origin": "control", "command": "retry", "force": True}
    await sync.process(feed(None, ADA, value=json.dumps(retry).encode()))
    assert [o["firstName"] for o in sync.sink.objects.values()] == ["Bo"]


class FlakyTopic(Topic):
    """A topic whose first ``failures`` deliveries fail after the send was queued."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.delivered: list[dict] = []

    async def send(self, *, key: bytes, value: bytes) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self.failures > 0:
            self.failures -= 1
            future.set_exception(KafkaError("MessageSizeTooLarge"))
        else:
            self.delivered.append(json.loads(value))
            future.set_result(None)
        return future


async def test_a_failed_delivery_is_sent_again_before_the_batch_counts_as_done():
    results = FlakyTopic(failures=1)
    sync = entity_sync(CONFIG, topics=Topics(results=results))
    await sync.process_batch([Feed()("c", ADA)])
    assert [r["action"] for r in results.delivered] == ["create"]


async def test_a_delivery_that_keeps_failing_fails_the_batch():
    letters = FlakyTopic(failures=99)
    sync = entity_sync(CONFIG, topics=Topics(dead_letters=letters))
    with pytest.raises(DeliveryError, match=r"MessageSizeTooLarge"):
        await sync.process_batch([Feed()(None, ADA, value=b"not json")])


async def two_way_contact(edit: str):
    """A synced two-way contact whose notes someone then edited in the API to ``edit``."""
    config = EntityConfig(
        topic="cdcsync.contact",
        mapping={"firstName": "first_name", "notes": "notes"},
        target={"provider": "memory"},
        source={"table": "contact"},
        policies={"conflict": "source_wins"},
    )
    writer = MemoryWriter(lambda *change: None)
    sync = entity_sync(config, writer=writer)
    feed = Feed()
    writer.rows["1"] = {"id": 1, "first_name": "Ada", "notes": ""}
    await sync.process(feed("c", writer.rows["1"]))
    (oid,) = sync.sink.objects
    sync.sink.edit(oid, {"notes": edit})
    return sync, writer, feed, oid


def polled(sync, oid: str) -> bytes:
    """The poll record of the object as it is now."""
    return external(oid, sync.sink.versions[oid], sync.sink.objects[oid])


RETRY = json.dumps({"origin": "control", "command": "retry", "force": True}).encode()


async def test_a_pull_retried_after_a_transient_failure_is_pulled_not_overwritten():
    """The soak lost external edits this way: a pull parked behind a 503 was retried as a
    conflict (the parked entity looked like an unpushed source change) and the source won."""
    sync, writer, feed, oid = await two_way_contact("called back")
    sync.sink.fail_next = [SinkTransientError("503", status_code=503)]  # the pull's read
    await sync.process(feed(None, {"id": 1}, value=polled(sync, oid)))
    assert sync.state.load("1").status == "retrying"

    await sync.process(feed(None, {"id": 1}, value=RETRY))
    assert [r["action"] for r in sync.topics.results.sent] == ["create", "pull"]
    assert writer.rows["1"]["notes"] == "called back"
    assert sync.sink.objects[oid]["notes"] == "called back"


async def test_a_source_change_queued_behind_a_parked_pull_is_still_a_conflict():
    sync, writer, feed, oid = await two_way_contact("called back")
    sync.sink.fail_next = [SinkTransientError("503", status_code=503)]
    await sync.process(feed(None, {"id": 1}, value=polled(sync, oid)))
    writer.rows["1"] = {"id": 1, "first_name": "Ann", "notes": ""}
    await sync.process(feed("u", writer.rows["1"]))  # queued behind the parked pull

    await sync.process(feed(None, {"id": 1}, value=RETRY))
    first = sync.topics.results.sent[1]
    assert (first["action"], first["reason"]) == ("update", "conflict (source_wins): source wins")
    assert sync.sink.objects[oid]["firstName"] == "Ann"


async def test_a_pull_that_failed_for_good_does_not_make_the_next_pull_a_conflict():
    sync, writer, feed, oid = await two_way_contact("one")
    sync.sink.fail_next = [SinkPermanentError("403", status_code=403)]
    await sync.process(feed(None, {"id": 1}, value=polled(sync, oid)))
    assert sync.state.load("1").status == "permanently_failed"
    sync.sink.edit(oid, {"notes": "two"})
    await sync.process(feed(None, {"id": 1}, value=polled(sync, oid)))
    assert sync.topics.results.sent[-1]["action"] == "pull"
    assert writer.rows["1"]["notes"] == "two"


async def test_an_echo_queued_behind_a_parked_pull_does_not_make_its_retry_a_conflict():
    """The full soak: while a pull waited behind a 503, the Debezium echo of an earlier
    pull queued behind it, and the retried pull met the conflict policy as if the row
    had changed."""
    sync, writer, feed, oid = await two_way_contact("first")
    await sync.process(feed(None, {"id": 1}, value=polled(sync, oid)))  # pulled: "first"
    echo = feed("u", dict(writer.rows["1"]))  # its Debezium echo, still on its way
    sync.sink.edit(oid, {"notes": "second"})
    sync.sink.fail_next = [SinkTransientError("503", status_code=503)]
    await sync.process(feed(None, {"id": 1}, value=polled(sync, oid)))
    await sync.process(echo)  # queued behind the parked pull
    assert len(sync.state.load("1").parked) == 2

    await sync.process(feed(None, {"id": 1}, value=RETRY))
    assert [r["action"] for r in sync.topics.results.sent][-2:] == ["pull", "skip"]
    assert writer.rows["1"]["notes"] == "second"
    assert sync.sink.objects[oid]["notes"] == "second"


async def test_a_pull_whose_state_write_a_crash_lost_is_no_conflict_when_it_comes_again():
    """The full soak lost 5 edits this way: a pull wrote the row, the worker was killed
    before the state write, and the redelivered poll record found the row changed since
    the last synced state, counted it a source change and, source winning, pushed the
    pulled row over the next external edit."""
    sync, writer, feed, oid = await two_way_contact("first")
    before = sync.state.load("1")
    first = polled(sync, oid)
    await sync.process(feed(None, {"id": 1}, value=first))
    assert writer.rows["1"]["notes"] == "first"
    sync.state.store("1", before)  # killed before the state write: its changelog never landed
    sync.sink.edit(oid, {"notes": "second"})

    await sync.process(feed(None, {"id": 1}, value=first))  # redelivered
    assert sync.topics.results.sent[-1]["action"] == "pull"
    assert writer.rows["1"]["notes"] == "second"
    assert sync.sink.objects[oid]["notes"] == "second"


async def test_a_row_edited_after_a_pull_whose_state_was_lost_is_still_a_conflict():
    sync, writer, feed, oid = await two_way_contact("first")
    before = sync.state.load("1")
    first = polled(sync, oid)
    await sync.process(feed(None, {"id": 1}, value=first))
    sync.state.store("1", before)
    writer.rows["1"] = {**writer.rows["1"], "first_name": "Ann"}  # a user's edit, event on its way
    sync.sink.edit(oid, {"notes": "second"})

    await sync.process(feed(None, {"id": 1}, value=first))
    last = sync.topics.results.sent[-1]
    assert (last["action"], last["reason"]) == ("update", "conflict (source_wins): source wins")
    assert sync.sink.objects[oid]["firstName"] == "Ann"


class Killed(BaseException):
    """kill -9 in the middle of an API call: nothing after it runs."""


async def test_a_worker_killed_while_draining_a_parked_queue_leaves_the_rest_parked_and_due():
    """The full soak's orphan: a kill between two events of a drain left the entity
    'synced' with events still queued and no retry due. Nothing redrove them, later
    records ran first, and when a redrive came the queued delete counted as already
    applied."""
    sync, feed = await failing_after_create()
    for name in ("A2", "A3", "A4"):
        await sync.process(feed("u", {**ADA, "first_name": name}))
    assert [p.offset for p in sync.state.load("1").parked] == [2, 3, 4]
    calls = 0
    update = sync.sink.update

    async def killed_on_the_second(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Killed
        return await update(*args, **kwargs)

    sync.sink.update = killed_on_the_second
    with pytest.raises(Killed):
        await sync.process(feed(None, ADA, value=RETRY))
    state = sync.state.load("1")
    assert [p.offset for p in state.parked] == [3, 4]
    assert state.last_offset == 2 and state.parked_for_retry and "1" in sync.state.due

    sync.sink.update = update  # the restarted worker: a newer record queues behind the rest
    await sync.process(feed("u", {**ADA, "first_name": "A5"}))
    assert [p.offset for p in sync.state.load("1").parked] == [3, 4, 6]
    await sync.process(feed(None, ADA, value=RETRY))  # and its timer redrives them
    assert [r["source"]["offset"] for r in sync.topics.results.sent[1:]] == [2, 3, 4, 6]
    assert sync.state.load("1").parked == [] and sync.state.load("1").status == "synced"
    assert sync.sink.objects[sync.state.load("1").external_id]["firstName"] == "A5"
