"""Write answers of the rest provider: the object, only an id, or nothing, and after_write;
ids checked before they enter a path."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from cdcsync.errors import SinkPermanentError
from cdcsync.refapi import RefApi
from cdcsync.schemas.config import EntityConfig
from cdcsync.sinks.base import ExternalRecord
from cdcsync.sinks.providers.rest import RestSettings, RestSink
from cdcsync.testing.events import Feed
from cdcsync.testing.world import entity_sync

TOKEN = "answers-test-token"
PATH = "/api/v1/contacts"


@pytest.fixture
def api_token() -> str:
    """The token the reference API (``api``, in conftest.py) accepts."""
    return TOKEN


def _sink(base_url: str, transport: httpx.AsyncBaseTransport | None = None, **kw: Any) -> RestSink:
    settings = RestSettings(
        base_url=base_url, collection_path=PATH, object_type="contact", token=TOKEN, **kw
    )
    return RestSink(settings, transport=transport, environ={})


def _mock(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> RestSink:
    return _sink("https://crm.example.com", httpx.MockTransport(handler), **kw)


def _calls(api: RefApi, operation: str) -> int:
    count: int = api.stats()["requests"]["by_operation"].get(operation, 0)
    return count


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_a_204_update_is_read_back_once(api: RefApi, method: str) -> None:
    api.habits = api.habits.changed({"update_answer": "empty"})
    row = api.store.create("contacts", {"email": "ada@example.com"})
    async with aclosing(_sink(api.url, update_method=method)) as sink:
        updated = await sink.update(row["id"], {"email": "b@x.org"}, expected_row_id=row["rowId"])
    current = api.store.get("contacts", row["id"])
    assert updated == ExternalRecord(row["id"], current["rowId"], {"email": "b@x.org"})
    assert _calls(api, "get") == 1


async def test_a_204_update_with_next_poll_sends_no_get(api: RefApi) -> None:
    api.habits = api.habits.changed({"update_answer": "empty"})
    row = api.store.create("contacts", {"email": "ada@example.com"})
    async with aclosing(_sink(api.url, after_write="next_poll")) as sink:
        updated = await sink.update(row["id"], {"email": "b@x.org"})
    assert updated == ExternalRecord(row["id"], None, {"email": "b@x.org"})
    assert _calls(api, "get") == 0


@pytest.mark.parametrize(("after_write", "api_calls"), [("read_back", 2), ("next_poll", 1)])
async def test_a_204_update_ends_in_a_result_not_a_dead_letter(
    api: RefApi, after_write: str, api_calls: int
) -> None:
    api.habits = api.habits.changed({"update_answer": "empty"})
    config = EntityConfig(
        topic="cdcsync.contact", natural_key=["email"], target={"provider": "memory"},
        mapping={"firstName": "first_name", "email": "email"},
    )  # fmt: skip
    async with aclosing(_sink(api.url, after_write=after_write)) as sink:
        sync = entity_sync(config, sink=sink)  # type: ignore[arg-type]
        feed, ada = Feed(), {"id": 1, "first_name": "Ada", "email": "ada@x.org"}
        await sync.process(feed("c", ada))
        await sync.process(feed("u", {**ada, "first_name": "Bo"}))
    assert sync.topics.dead_letters.sent == []
    update = sync.topics.results.sent[-1]
    assert (update["action"], update["api_calls"]) == ("update", api_calls)


@pytest.mark.parametrize("answer", ["id", "location"])
@pytest.mark.parametrize("after_write", ["read_back", "next_poll"])
async def test_id_only_creates(api: RefApi, answer: str, after_write: str) -> None:
    api.habits = api.habits.changed({"create_answer": answer})
    async with aclosing(_sink(api.url, after_write=after_write)) as sink:
        created = await sink.create({"email": "ada@example.com"})
    (row,) = api.store.matching("contacts")
    if after_write == "read_back":
        assert created == ExternalRecord(row["id"], row["rowId"], {"email": "ada@example.com"})
        assert _calls(api, "get") == 1
    else:
        assert created == ExternalRecord(row["id"], None, {"email": "ada@example.com"})
        assert _calls(api, "get") == 0


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [(201, b"", {}), (200, b'{"ok": true}', {}), (201, b"", {"Location": "/elsewhere/7"})],
)
async def test_a_create_without_an_id_says_the_write_landed(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    async with aclosing(_mock(handler)) as sink:
        with pytest.raises(SinkPermanentError) as caught:
            await sink.create({"email": "ada@example.com"})
    text = str(caught.value)
    assert "write landed" in text and "object_path" in text and "id_field" in text
    assert "natural_key" in text


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (b"42", {}, "42"),
        (b'{"data": {"id": 7}}', {}, "7"),
        (b"", {"Location": "https://crm.example.com/api/v1/contacts/a%20b"}, "a b"),
        (b"<html>created</html>", {"Location": "contacts/9"}, "9"),
    ],
)
async def test_ids_from_bare_bodies_envelopes_and_locations(
    body: bytes, headers: dict[str, str], expected: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, content=body, headers=headers)

    object_path = "/data" if body.startswith(b'{"data"') else ""
    async with aclosing(_mock(handler, after_write="next_poll", object_path=object_path)) as sink:
        created = await sink.create({"email": "a@x.org"})
    assert created == ExternalRecord(expected, None, {"email": "a@x.org"})


async def test_a_failing_read_back_leaves_the_version_to_the_next_poll() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(503)
        return httpx.Response(204)

    async with aclosing(_mock(handler)) as sink:
        updated = await sink.update("5", {"email": "a@x.org"})
    assert updated == ExternalRecord("5", None, {"email": "a@x.org"})


@pytest.mark.parametrize("bad_id", ["", ".", "..", None, True, 1.5, ["1"]])
async def test_ids_are_checked_before_any_request(api: RefApi, bad_id: Any) -> None:
    async with aclosing(_sink(api.url)) as sink:
        for call in (sink.get(bad_id), sink.update(bad_id, {"a": 1}), sink.delete(bad_id)):
            with pytest.raises(SinkPermanentError, match="external id"):
                await call
    assert api.stats()["requests"]["total"] == 0


async def test_an_integer_id_is_a_path_segment(api: RefApi) -> None:
    async with aclosing(_sink(api.url)) as sink:
        assert await sink.get(42) is None  # type: ignore[arg-type]
    assert api.stats()["requests"]["by_kind"] == {"item": 1}
