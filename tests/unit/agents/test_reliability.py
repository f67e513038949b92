"""Holes a chaos soak finds (issue 14): each change ends in a write or a dead letter, once."""

from __future__ import annotations

import json

from cdcsync.errors import SinkPermanentError, SinkTransientError
from cdcsync.schemas.config import EntityConfig
from cdcsync.testing.events import Feed
from cdcsync.testing.world import entity_sync

CONFIG = EntityConfig(
    retry={"max_attempts": 3},
    topic="cdcsync.contact",
    natural_key=["email"],
    mapping={"firstName": "first_name", "email": "email"},
    target={"provider": "memory"},
)
ADA = {"id": 1, "first_name": "Ada", "email": "ada@x.org"}


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
    sync = entity_sync(CONFIG)
    feed = Feed()
    await sync.process(feed("c", ADA))
    sync.sink.fail_next = [SinkTransientError("503", status_code=503)]
    await sync.process_batch([feed("u", {**ADA, "first_name": n}) for n in ("A2", "A3", "A4")])
    assert [p.offset for p in sync.state.load("1").parked] == [2, 3, 4]
    assert [r["action"] for r in sync.topics.results.sent] == ["create"]
    retry = {"origin": "control", "command": "retry", "force": True}
    await sync.process(feed(None, ADA, value=json.dumps(retry).encode()))
    assert [r["source"]["offset"] for r in sync.topics.results.sent[1:]] == [2, 3, 4]
    assert [o["firstName"] for o in sync.sink.objects.values()] == ["A4"]
