"""Guards against storms: a write loop holds its entity; what we wrote is never pushed back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from cdcsync import metrics
from cdcsync.agents.change import Outcome
from cdcsync.agents.decide import decide, deletes_allowed, repeat_writes, write_loops
from cdcsync.agents.poller import Poller
from cdcsync.agents.state import next_state
from cdcsync.errors import SinkPermanentError
from cdcsync.mappers.fieldmap import FieldMap, payload_hash
from cdcsync.schemas.config import EntityConfig, Guards
from cdcsync.schemas.envelope import ChangeEvent, Control, ExternalChange
from cdcsync.schemas.events import SourcePosition
from cdcsync.schemas.state import SyncState, WriteMark
from cdcsync.sinks.base import ExternalRecord
from cdcsync.testing.events import Partition, Topic, Topics, debezium_value
from cdcsync.testing.sinks import MemorySink, MemoryWriter
from cdcsync.testing.world import entity_sync

NOW = 1_000_000_000_000
GUARDS = Guards(loop_writes=3, loop_window_s=60)


def marks(*digests: str | None, age_s: float = 1) -> list[WriteMark]:
    return [WriteMark(at_ms=NOW - int(age_s * 1000), digest=d) for d in digests]


def test_repeats_count_content_already_written_within_the_window():
    assert repeat_writes(marks("a", "b", "a", "a"), now_ms=NOW, window_s=60) == 2
    assert repeat_writes(marks("a", "a", age_s=61), now_ms=NOW, window_s=60) == 0
    assert repeat_writes(marks(None, None), now_ms=NOW, window_s=60) == 1


@pytest.mark.parametrize(
    ("written", "digest", "loops"),
    [
        (["a", "a", "a"], "a", False),  # two repeats: under the limit of three
        (["a", "a", "a", "a"], "a", True),  # three repeats: the next write of "a" is held
        (["a", "a", "a", "a"], None, True),  # a write whose content is not known yet
        (["a", "a", "a", "a"], "new", False),  # new source content always goes through
        (["a", "b", "a", "b", "a"], "b", True),  # ping-pong between two contents
    ],
)
def test_write_loops(written, digest, loops):
    state = SyncState(external_id="x1", writes=marks(*written))
    assert write_loops(state, digest, GUARDS, now_ms=NOW) is loops


@pytest.mark.parametrize(
    ("missing", "linked", "allowed"),
    [(1, 2, True), (2, 2, True), (3, 100, True), (10, 100, True), (11, 100, False),
     (3, 10, False), (50, 50, False)],
)  # fmt: skip
def test_deletes_allowed(missing, linked, allowed):
    assert deletes_allowed(missing, linked, Guards()) is allowed


CONFIG = EntityConfig(
    topic="t",
    target={"provider": "memory"},
    mapping={"name": "name", "email": "email"},
    source={"table": "t"},
    guards={"loop_writes": 3, "loop_window_s": 60},
)
MAP = FieldMap(CONFIG.mapping)
PAYLOAD = {"name": "Ada", "email": "a@x.org"}


def test_a_held_decision_replaces_a_repeated_write():
    state = SyncState(external_id="x1", row_id="v1", payload_hash="old",
                      writes=marks(*[payload_hash(PAYLOAD)] * 4))  # fmt: skip
    row = {"id": 1, **PAYLOAD}
    change = ChangeEvent(entity_id="1", op="update", before=row, after=row)
    decision = decide(change, state, config=CONFIG, mapper=MAP, partition=0, offset=1, now_ms=NOW)
    assert decision.action == "hold" and "loop suspected" in decision.reason


def test_what_we_wrote_is_never_pushed_back_and_its_version_is_adopted():
    # The write landed but its version was not read (a 204 answer): state row_id is None.
    state = SyncState(external_id="x1", row_id=None, payload_hash=payload_hash(PAYLOAD),
                      status="permanently_failed")  # fmt: skip
    ext = ExternalChange(change="upsert", external_id="x1", version="v7", fields=PAYLOAD)
    change = ChangeEvent(
        entity_id="1", op="update", origin="external", external=ext, before=None, after=None
    )
    decision = decide(change, state, config=CONFIG, mapper=MAP, partition=0, offset=1, now_ms=NOW)
    assert (decision.action, decision.version) == ("skip", "v7")
    outcome = Outcome("skip", decision.reason, "x1", version=decision.version)
    position = SourcePosition(topic="t", partition=0, offset=1)
    assert next_state(state, outcome, position, now_ms=NOW).row_id == "v7"


class LostAnswerSink(MemorySink):
    """An API that stores its own form of a field (upper-cased names) and whose update
    answers the provider cannot read: each write lands, and raises all the same."""

    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        return await super().create({**payload, "name": str(payload["name"]).upper()})

    async def update(self, external_id: str, payload: Mapping[str, Any], **kwargs: Any):
        await super().update(external_id, {**payload, "name": str(payload["name"]).upper()})
        raise SinkPermanentError("answered HTTP 200 with a body that is not JSON", status_code=200)


class UnreadableSink(MemorySink):
    """An API whose write answers carry no version (a 204): the write lands all the same."""

    async def update(self, external_id: str, payload: Mapping[str, Any], **kwargs: Any):
        record = await super().update(external_id, payload, **kwargs)
        return ExternalRecord(record.id, None, dict(payload))


async def _world(sink: MemorySink):
    part = Partition(topic="t")
    notes = Topic()
    writer = MemoryWriter(
        lambda op, eid, before, after: part.append(
            json.dumps({"id": int(eid)}).replace(" ", "").encode(),
            debezium_value(op, before, after),
        )
    )
    topics = Topics(results=part, dead_letters=part, conflicts=part, notifications=notes)
    sync = entity_sync(CONFIG, sink=sink, writer=writer, topics=topics, entity="t")
    poller = Poller(sync.entity, sync.applier, part, sync.refs)  # type: ignore[arg-type]
    return sync, poller, part, notes, writer


async def _drain(sync, part: Partition) -> None:
    while part.events:
        await sync.process(part.events.pop(0))


def _guard_count() -> float:
    labels = {"entity": "t", "guard": "loop_suspected"}
    return metrics.REGISTRY.get_sample_value("cdcsync_guards_total", labels) or 0.0


async def test_a_failure_that_repeats_on_every_poll_ends_held_not_in_a_storm():
    sink = LostAnswerSink()
    sync, poller, part, notes, writer = await _world(sink)
    before = _guard_count()
    writer.edit("1", {"name": "ada", "email": "a@x.org"})
    await _drain(sync, part)
    (external_id,) = sink.objects
    writer.edit("1", {"name": "bob"})  # lands as BOB, and the answer fails
    await _drain(sync, part)
    for _ in range(10):  # each poll sees BOB unlike our bob: source_wins would push again
        await poller.poll_once()
        await _drain(sync, part)
    state = sync.state.load("1")
    assert state is not None and state.hold == "loop_suspected"
    limit = CONFIG.guards.loop_writes
    assert sink.writes <= 1 + limit + 1  # the create, the first update, then the repeats
    letters = [r for r in part.sent if "error_type" in r]
    assert 1 <= len(letters) <= limit + 1  # bounded: no dead-letter storm
    assert len(notes.sent) == 1 and "loop suspected" in notes.sent[0]["message"]
    assert _guard_count() == before + 1
    held_writes = sink.writes
    for _ in range(3):
        await poller.poll_once()
        await _drain(sync, part)
    assert sink.writes == held_writes  # held: nothing more is written

    # An operator retries: the hold is released and the parked change runs once more.
    retry = Control(command="retry", force=True).model_dump_json().encode()
    part.append(b'{"id":1}', retry)
    await _drain(sync, part)
    state = sync.state.load("1")
    assert state is not None and state.hold is None
    assert sink.writes == held_writes + 1
    assert sink.objects[external_id]["name"] == "BOB"


async def test_write_answers_without_a_version_cost_one_write_per_change():
    sink = UnreadableSink()
    sync, poller, part, notes, writer = await _world(sink)
    writer.edit("1", {"name": "Ada", "email": "a@x.org"})
    await _drain(sync, part)
    for i in range(5):
        writer.edit("1", {"name": f"Ada {i}"})
        await _drain(sync, part)
        for _ in range(3):
            await poller.poll_once()
            await _drain(sync, part)
    assert sink.writes == 1 + 5  # the create, then one update per change
    state = sync.state.load("1")
    assert state is not None and state.status == "synced" and state.hold is None
    assert state.row_id == sink.versions[state.external_id]  # adopted from the poll
    assert notes.sent == []


class ShortListingSink(MemorySink):
    """An API whose listing leaves some objects out (a paging bug) while they still exist."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: set[str] = set()

    async def list(self):
        async for record in super().list():
            if record.id not in self.hidden:
                yield record


async def _linked_world(n: int):
    sink = ShortListingSink()
    config = CONFIG.model_copy(
        update={"policies": CONFIG.policies.model_copy(update={"target_delete": "delete"})}
    )
    part, notes = Partition(topic="t"), Topic()
    topics = Topics(results=part, dead_letters=part, conflicts=part, notifications=notes)
    sync = entity_sync(config, sink=sink, topics=topics, entity="t")
    for i in range(n):
        record = await sink.create({"name": f"n{i}", "email": f"{i}@x.org"})
        sync.refs[record.id] = f'{{"id":{i}}}'
    poller = Poller(sync.entity, sync.applier, part, sync.refs, notify=sync.emit.notify)  # type: ignore[arg-type]
    await poller.poll_once()
    part.events.clear()
    return sink, poller, part, notes


def _deletes(part: Partition) -> list[str]:
    return [json.loads(e.value)["external_id"] for e in part.events if b'"delete"' in e.value]


async def test_a_listing_missing_too_many_objects_deletes_nothing_and_says_so():
    sink, poller, part, notes = await _linked_world(20)
    sink.hidden = set(list(sink.objects)[:5])  # 5 of 20: more than 10%
    first = await poller.poll_once()
    second = await poller.poll_once()
    assert _deletes(part) == []
    assert first.delete_blocked == second.delete_blocked == 5
    assert len(notes.sent) == 1 and "nothing was deleted" in notes.sent[0]["message"]


async def test_an_object_missing_from_the_listing_is_deleted_only_after_a_404():
    sink, poller, part, notes = await _linked_world(20)
    glitch, gone = list(sink.objects)[:2]
    sink.hidden = {glitch}  # left out of the listing, but still there
    del sink.objects[gone], sink.versions[gone]  # really deleted
    report = await poller.poll_once()
    assert _deletes(part) == [gone]
    assert (report.deleted, report.still_there, report.delete_blocked) == (1, 1, 0)
    assert notes.sent == []
