"""The sync step on fake events, table and topics: every record ends in one event."""

from __future__ import annotations

import json

import pytest

from cdcsync.agents.controls import send_due_retries, sweep_parked
from cdcsync.agents.sync import EntitySync
from cdcsync.errors import SinkPermanentError, SinkTransientError
from cdcsync.testing.events import Feed, Topic
from cdcsync.testing.world import CONTACT, entity_sync

CONFIG = CONTACT


@pytest.fixture
def sync() -> EntitySync:
    return entity_sync(CONFIG)


ADA = {"id": 1, "first_name": "Ada", "email": "ada@x.org", "notes": ""}


async def test_create_update_skip_delete(sync):
    feed = Feed()
    for event in [
        feed("c", ADA),
        feed("u", {**ADA, "notes": "n"}),
        feed("u", {**ADA, "first_name": "Bo"}),
        feed("d", ADA),
        feed(None, ADA),
    ]:
        await sync.process(event)
    actions = [(r["action"], r["api_calls"]) for r in sync.topics.results.sent]
    # create looks up the natural key first (2 calls); unmapped change and tombstone are free
    assert actions == [("create", 2), ("skip", 0), ("update", 1), ("delete", 1), ("skip", 0)]
    assert sync.sink.objects == {}
    assert sync.topics.dead_letters.sent == []
    assert sync.table["1"]["status"] == "deleted"


async def test_redelivery_after_lost_state_adopts_instead_of_duplicating(sync):
    feed = Feed()
    create = feed("c", ADA)
    await sync.process(create)
    sync.table.clear()  # crash between the external write and the state write
    await sync.process(create)
    assert len(sync.sink.objects) == 1
    assert sync.topics.results.sent[-1]["reason"].startswith("adopted existing object")


async def test_redelivered_event_is_skipped(sync):
    feed = Feed()
    create = feed("c", ADA)
    await sync.process(create)
    await sync.process(create)
    assert [r["action"] for r in sync.topics.results.sent] == ["create", "skip"]
    assert len(sync.sink.objects) == 1


@pytest.mark.parametrize(
    ("event_kwargs", "reason", "message"),
    [
        ({"value": b"not json"}, "schema", "not JSON"),
        ({"value": b"42"}, "schema", "JSON object"),
        ({"value": b'{"op": "z", "after": {}}'}, "schema", "unsupported op"),
        ({"key": b"oops", "value": b"{}"}, "schema", "key is not JSON"),
    ],
)
async def test_bad_input_becomes_a_dead_letter_and_the_next_event_syncs(
    sync, event_kwargs, reason, message
):
    feed = Feed()
    await sync.process(feed(None, ADA, **event_kwargs))
    await sync.process(feed("c", ADA))
    (letter,) = sync.topics.dead_letters.sent
    assert letter["reason"] == reason and message in letter["error"]
    assert letter["original"]["value"] == event_kwargs["value"].decode()
    assert letter["source"] == {"topic": "cdcsync.contact", "partition": 0, "offset": 1}
    assert letter["entity_id"] == (None if "key" in event_kwargs else "1")
    assert [r["action"] for r in sync.topics.results.sent] == ["create"]


async def test_mapping_error_is_a_dead_letter(sync):
    await sync.process(Feed()("c", {"id": 1, "email": "ada@x.org"}))
    (letter,) = sync.topics.dead_letters.sent
    assert letter["reason"] == "mapping" and "first_name" in letter["error"]
    assert letter["entity_id"] == "1"


def retry(force: bool = True) -> dict:
    return {"origin": "control", "command": "retry", "force": force}


async def test_a_transient_error_parks_the_entity_and_a_retry_syncs_it(sync):
    feed = Feed()
    sync.sink.fail_next = [SinkTransientError("503", status_code=503)]
    await sync.process(feed("c", ADA))
    await sync.process(feed("u", {**ADA, "first_name": "Later"}))
    bob = {**ADA, "id": 2, "email": "bob@x.org"}
    await sync.process(feed("c", bob))  # another entity keeps flowing
    state = sync.table["1"]
    assert state["status"] == "retrying" and state["attempts"] == 1
    assert [p["offset"] for p in state["parked"]] == [1, 2]
    assert [(r["entity_id"], r["action"]) for r in sync.topics.results.sent] == [("2", "create")]

    await sync.process(feed(None, ADA, value=json.dumps(retry()).encode()))
    results = [(r["entity_id"], r["action"], r["attempts"]) for r in sync.topics.results.sent]
    assert results[1:] == [("1", "create", 2), ("1", "update", 1)]
    assert sync.table["1"]["status"] == "synced" and sync.table["1"]["parked"] == []
    assert sorted(o["firstName"] for o in sync.sink.objects.values()) == ["Ada", "Later"]


async def test_an_early_retry_tick_does_nothing(sync):
    feed = Feed()
    sync.sink.fail_next = [SinkTransientError("503", status_code=503, retry_after=60)]
    await sync.process(feed("c", ADA))
    await sync.process(feed(None, ADA, value=json.dumps(retry(force=False)).encode()))
    assert sync.topics.results.sent == [] and sync.table["1"]["status"] == "retrying"


async def test_exhausted_retries_dead_letter_with_every_error_and_notify(sync):
    feed = Feed()
    sync.sink.fail_next = [SinkTransientError(f"503 #{i}", status_code=503) for i in range(3)]
    await sync.process(feed("c", ADA))
    await sync.process(feed("u", {**ADA, "first_name": "Next"}))
    for _ in range(2):
        await sync.process(feed(None, ADA, value=json.dumps(retry()).encode()))
    (letter,) = sync.topics.dead_letters.sent
    assert letter["reason"] == "sink_transient" and letter["attempts"] == 3
    assert letter["details"]["errors"] == ["503 #0", "503 #1", "503 #2"]
    (note,) = [n for n in sync.topics.notifications.sent]
    assert note["level"] == "error" and "gave up after 3 attempts" in note["message"]
    # the event queued behind it still syncs
    assert [(r["action"], r["source"]["offset"]) for r in sync.topics.results.sent] == [
        ("create", 2)
    ]


async def test_a_permanent_error_dead_letters_at_once(sync):
    sync.sink.fail_next = [SinkPermanentError("422 bad email", status_code=422)]
    await sync.process(Feed()("c", ADA))
    (letter,) = sync.topics.dead_letters.sent
    assert (letter["reason"], letter["attempts"]) == ("sink_permanent", 1)
    assert sync.table["1"]["status"] == "permanently_failed"


async def test_cancel_dead_letters_the_parked_events(sync):
    feed = Feed()
    sync.sink.fail_next = [SinkTransientError("503", status_code=503)]
    await sync.process(feed("c", ADA))
    await sync.process(feed("u", {**ADA, "first_name": "Next"}))
    cancel = {"origin": "control", "command": "cancel", "by": "test"}
    await sync.process(feed(None, ADA, value=json.dumps(cancel).encode()))
    assert [(d["reason"], d["source"]["offset"]) for d in sync.topics.dead_letters.sent] == [
        ("cancelled", 1),
        ("cancelled", 2),
    ]
    assert sync.table["1"]["parked"] == [] and sync.sink.objects == {}


async def test_due_retries_are_signalled_once_per_schedule(sync):
    feed = Feed()
    sync.sink.fail_next = [SinkTransientError("503", status_code=503, retry_after=0)]
    await sync.process(feed("c", ADA))
    topic, sent = Topic(), {}
    topic.send = _capture(topic)
    assert await send_due_retries(sync.state, topic, sent) == 1
    assert await send_due_retries(sync.state, topic, sent) == 0
    assert topic.raw == [(b'{"id":1}', retry(force=False))]


class Unlistable(dict):
    """A state table whose whole-table reads fail: the timer must not decode every state."""

    def items(self):
        raise AssertionError("the retry timer listed the whole table")

    keys = values = items


async def test_the_retry_timer_reads_its_index_not_the_whole_table(sync):
    feed = Feed()
    sync.sink.fail_next = [SinkTransientError("503", status_code=503, retry_after=0)]
    await sync.process(feed("c", ADA))
    sync.state.table = Unlistable(sync.table)
    topic, sent = Topic(), {}
    topic.send = _capture(topic)
    assert await send_due_retries(sync.state, topic, sent) == 1


async def test_a_sweep_finds_parked_entities_recovered_from_the_changelog(sync):
    feed = Feed()
    sync.sink.fail_next = [SinkTransientError("503", status_code=503, retry_after=0)]
    await sync.process(feed("c", ADA))
    recovered = entity_sync(CONFIG)  # a worker that got the partition: the table, no index
    recovered.table.update(sync.table)
    topic, sent = Topic(), {}
    topic.send = _capture(topic)
    assert await send_due_retries(recovered.state, topic, sent) == 0
    assert await sweep_parked(recovered.state, chunk=1) == 1
    assert await send_due_retries(recovered.state, topic, sent) == 1


async def test_an_entity_no_longer_parked_leaves_the_index(sync):
    feed = Feed()
    sync.sink.fail_next = [SinkTransientError("503", status_code=503, retry_after=0)]
    await sync.process(feed("c", ADA))
    assert list(sync.state.due) == ["1"]
    stale = dict(sync.table["1"], status="synced", parked=[])
    sync.table["1"] = stale  # changed behind the index's back (a recovered write)
    topic, sent = Topic(), {}
    topic.send = _capture(topic)
    assert await send_due_retries(sync.state, topic, sent) == 0
    assert sync.state.due == {}


def _capture(topic):
    topic.raw = []

    async def send(*, key, value):
        body = {k: v for k, v in json.loads(value).items() if not k.startswith("child_")}
        body.pop("requested_ms"), body.pop("by"), body.pop("take")
        topic.raw.append((key, body))

    return send


async def test_update_of_an_externally_deleted_object_recreates_it(sync):
    feed = Feed()
    await sync.process(feed("c", ADA))
    sync.sink.objects.clear()
    await sync.process(feed("u", {**ADA, "first_name": "Bo"}))
    assert [o["firstName"] for o in sync.sink.objects.values()] == ["Bo"]
    assert sync.topics.results.sent[-1]["reason"] == "external object was gone; re-created"


async def test_batch_keeps_order_per_key(sync):
    feed = Feed()
    bob = {**ADA, "id": 2, "email": "bob@x.org"}
    events = [
        feed("c", ADA),
        feed("c", bob),
        feed("u", {**ADA, "first_name": "A2"}),
        feed("u", {**bob, "first_name": "B2"}),
        feed("d", ADA),
    ]
    await sync.process_batch(events)
    per_key: dict[str, list[str]] = {}
    for r in sync.topics.results.sent:
        per_key.setdefault(r["entity_id"], []).append(r["action"])
    assert per_key == {"1": ["create", "update", "delete"], "2": ["create", "update"]}
    assert [o["firstName"] for o in sync.sink.objects.values()] == ["B2"]


async def test_a_replayed_unchanged_record_repairs_a_drifted_external_copy(sync):
    feed = Feed()
    create = feed("c", ADA)
    await sync.process(create)
    (oid,) = sync.sink.objects
    sync.sink.objects[oid] = {"firstName": "Damaged", "email": "ada@x.org"}
    replay = feed("c", ADA)
    replay.headers = {"cdcsync-replay": b"cdcsync.contact/0/1"}
    await sync.process(replay)
    assert sync.sink.objects[oid] == {"firstName": "Ada", "email": "ada@x.org"}
    assert sync.topics.results.sent[-1]["reason"] == "re-check: external copy differed; repaired"
    await sync.process(feed("c", ADA))  # no replay header: unchanged payload, no API call
    assert sync.topics.results.sent[-1]["api_calls"] == 0


@pytest.mark.parametrize(("take", "expected"), [("source", "FromDb"), ("target", "FromApi")])
async def test_an_operator_resolves_a_manual_conflict(take, expected):
    from cdcsync.testing.sinks import MemorySink as VersionedSink
    from cdcsync.testing.sinks import MemoryWriter

    sink, events = VersionedSink(), []
    writer = MemoryWriter(lambda *change: events.append(change))
    config = CONFIG.model_copy(
        update={"policies": CONFIG.policies.model_copy(update={"conflict": "manual"})}
    )
    sync = entity_sync(config, sink=sink, writer=writer)
    feed = Feed()
    writer.rows["1"] = dict(ADA)
    await sync.process(feed("c", ADA))
    (oid,) = sink.objects
    sink.edit(oid, {"firstName": "FromApi"})  # changed externally: the next push meets a 412
    writer.rows["1"]["first_name"] = "FromDb"
    await sync.process(feed("u", writer.rows["1"]))
    assert sync.table["1"]["status"] == "conflict"
    (conflict,) = sync.topics.conflicts.sent
    assert conflict["source_version"]["firstName"] == "FromDb"
    assert conflict["target_version"]["firstName"] == "FromApi"

    resolve = {"origin": "control", "command": "resolve", "take": take}
    await sync.process(feed(None, ADA, value=json.dumps(resolve).encode()))
    assert sync.table["1"]["status"] == "synced"
    assert sink.objects[oid]["firstName"] == writer.rows["1"]["first_name"] == expected


async def test_consecutive_updates_of_one_entity_in_a_batch_coalesce_into_one_write(sync):
    feed = Feed()
    await sync.process(feed("c", ADA))
    updates = [feed("u", {**ADA, "first_name": name}) for name in ("A2", "A3", "A4")]
    await sync.process_batch(updates)
    results = sync.topics.results.sent[1:]
    # the carried changes end once their carrier has: after its result
    assert [r["action"] for r in results] == ["update", "skip", "skip"]
    assert [r["api_calls"] for r in results] == [1, 0, 0]
    assert results[1]["reason"].startswith("coalesced: superseded by offset 4")
    assert [o["firstName"] for o in sync.sink.objects.values()] == ["A4"]
    assert sync.state.load("1").last_offset == 4


async def test_updates_of_a_parked_entity_queue_instead_of_coalescing(sync):
    feed = Feed()
    await sync.process(feed("c", ADA))
    sync.sink.fail_next = [SinkTransientError("503")]
    await sync.process(feed("u", {**ADA, "first_name": "A2"}))
    await sync.process_batch([feed("u", {**ADA, "first_name": n}) for n in ("A3", "A4")])
    state = sync.state.load("1")
    assert state.status == "retrying"
    assert len(state.parked) == 3  # the failed update first, then both later ones


async def test_watch_turns_coalescing_off():
    config = CONFIG.model_copy(update={"watch": ["first_name"]})
    sync = entity_sync(config)
    feed = Feed()
    await sync.process(feed("c", ADA))
    await sync.process_batch([feed("u", {**ADA, "first_name": n}) for n in ("A2", "A3")])
    assert [r["action"] for r in sync.topics.results.sent] == ["create", "update", "update"]


async def test_aclose_closes_a_built_sink_and_leaves_an_unbuilt_one(sync):
    closed: list[str] = []

    async def aclose() -> None:
        closed.append("sink")

    sync.sink.aclose = aclose
    await sync.aclose()
    assert closed == ["sink"]
    fresh = entity_sync(CONFIG)
    fresh.__dict__.pop("sink", None)
    await fresh.aclose()
    assert "sink" not in fresh.__dict__  # closing built nothing


async def test_the_retry_timer_sweeps_when_the_partitions_change_not_every_tick(sync):
    from types import SimpleNamespace

    from cdcsync.agents.build import _retry_timer_for

    feed = Feed()
    sync.sink.fail_next = [SinkTransientError("503", status_code=503, retry_after=0)]
    await sync.process(feed("c", ADA))
    recovered = entity_sync(CONFIG)  # the parked state arrives with a partition
    assigned: set[int] = set()
    topic = Topic()
    topic.send = _capture(topic)
    topic.app = SimpleNamespace(consumer=SimpleNamespace(assignment=lambda: set(assigned)))
    tick = _retry_timer_for(recovered, topic)
    await tick()
    recovered.table.update(sync.table)  # recovered from the changelog: not in the index
    await tick()
    assert topic.raw == []  # same partitions: no sweep, so not found yet
    assigned.add(0)
    await tick()
    assert [key for key, _body in topic.raw] == [b'{"id":1}']
