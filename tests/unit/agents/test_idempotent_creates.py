"""A create retried after a timeout sends the same idempotency key, so it makes one object."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import httpx

from cdcsync.schemas.config import Config, EntityConfig
from cdcsync.sinks.providers.rest import RestSettings, RestSink
from cdcsync.streams.preflight import check_idempotent_creates
from cdcsync.testing.events import Feed
from cdcsync.testing.sinks import MemorySink
from cdcsync.testing.world import entity_sync

CONFIG = EntityConfig(
    topic="cdcsync.contact",
    mapping={"firstName": "first_name", "email": "email"},
    target={"provider": "rest"},
)
ADA = {"id": 1, "first_name": "Ada", "email": "ada@x.org"}


async def test_a_retried_create_sends_the_same_idempotency_key():
    keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        if len(keys) == 1:
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return httpx.Response(201, json={"id": "c1", "rowId": "v1", **json.loads(request.content)})

    settings = RestSettings(
        base_url="https://crm.example.com", collection_path="/c", object_type="contact",
        idempotency_header="Idempotency-Key",
    )  # fmt: skip
    sink = RestSink(settings, transport=httpx.MockTransport(handler))
    sync = entity_sync(CONFIG, sink=cast(MemorySink, sink))
    feed = Feed()
    await sync.process(feed("c", ADA))  # times out: parked
    retry = {"origin": "control", "command": "retry", "force": True}
    await sync.process(feed(None, ADA, value=json.dumps(retry).encode()))
    assert [r["action"] for r in sync.topics.results.sent] == ["create"]
    assert len(keys) == 2 and keys[0] is not None and keys[0] == keys[1]
    other = entity_sync(CONFIG, sink=cast(MemorySink, sink), entity="lead")
    await other.process(Feed()("c", ADA))
    assert keys[2] not in (None, keys[0])  # another entity, another key
    await sink.aclose()


def _config(entity: dict[str, Any], settings: dict[str, Any]) -> Config:
    target = {"provider": "rest", "settings": {"base_url": "https://crm.example.com",
              "collection_path": "/c", "object_type": "contact", **settings}}  # fmt: skip
    base = {"topic": "t", "mapping": {"email": "email"}, "target": target}
    return Config.model_validate({"entities": {"contact": base | entity}})


def test_creates_that_a_retry_may_duplicate_are_warned_about_at_start_up(caplog):
    with caplog.at_level(logging.WARNING):
        assert check_idempotent_creates(_config({}, {})) == ["contact"]
    assert "contact: no natural_key and no idempotency_header" in caplog.text
    caplog.clear()
    assert check_idempotent_creates(_config({"natural_key": ["email"]}, {})) == []
    keyed = _config({}, {"idempotency_header": "Idempotency-Key"})
    assert check_idempotent_creates(keyed) == [] and caplog.text == ""
