"""RestSink's write settings (concurrency, patch_format, create_method, bulk matching) against
the reference API with the write habits of other APIs, and httpx mocks for exact answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cdcsync.errors import (
    ConfigurationError,
    SinkConflictError,
    SinkPermanentError,
    SinkTransientError,
)
from cdcsync.refapi import RefApi
from cdcsync.sinks.base import BulkWrite, CallCounter, ExternalRecord, call_counter
from cdcsync.sinks.providers.rest import RestSettings, RestSink

TOKEN = "sinks-test-token"  # the token conftest's ``api`` accepts
PATH = "/api/v1/contacts"


def _settings(base_url: str, **overrides: Any) -> RestSettings:
    values: dict[str, Any] = {
        "base_url": base_url, "collection_path": PATH, "object_type": "contact", "token": TOKEN,
    }  # fmt: skip
    return RestSettings(**(values | overrides))


def _sink(api: RefApi, **overrides: Any) -> RestSink:
    return RestSink(_settings(api.url, **overrides))


def _mock_sink(handler: Callable[[httpx.Request], httpx.Response], **overrides: Any) -> RestSink:
    settings = _settings("https://crm.example.com", **overrides)
    return RestSink(settings, transport=httpx.MockTransport(handler))


@pytest.fixture
async def ada(api: RefApi) -> AsyncIterator[dict[str, Any]]:
    """A contact created on the reference API; the test edits it 'externally' too."""
    yield api.store.create("contacts", {"email": "ada@example.com", "name": "Ada"})


async def _calls(call: Any) -> tuple[Any, int]:
    counter = CallCounter()
    token = call_counter.set(counter)
    try:
        return await call, counter.calls
    finally:
        call_counter.reset(token)


# -- concurrency ----------------------------------------------------------------------


async def test_read_before_write_catches_a_concurrent_edit_the_api_would_overwrite(
    api: RefApi, ada: dict[str, Any]
) -> None:
    api.writes.switch(if_match="ignore")
    api.store.merge("contacts", ada["id"], {"name": "Ada (edited in the CRM)"})
    async with aclosing(_sink(api, concurrency="read_before_write")) as sink:
        with pytest.raises(SinkConflictError) as caught:
            await sink.update(ada["id"], {"email": "new@example.com"}, expected_row_id=ada["rowId"])
    assert caught.value.status_code == 412 and "changed concurrently" in str(caught.value)
    assert api.store.get("contacts", ada["id"])["name"] == "Ada (edited in the CRM)"
    assert api.stats()["requests"]["by_method"] == {"GET": 1}  # no write was sent


@pytest.mark.parametrize("concurrency", ["if_match", "none"])
async def test_on_an_api_ignoring_if_match_the_other_modes_overwrite_the_edit(
    api: RefApi, ada: dict[str, Any], concurrency: str
) -> None:
    api.writes.switch(if_match="ignore")
    api.store.merge("contacts", ada["id"], {"name": "Ada (edited in the CRM)"})
    async with aclosing(_sink(api, concurrency=concurrency)) as sink:
        await sink.update(ada["id"], {"email": "new@example.com"}, expected_row_id=ada["rowId"])
    assert "name" not in api.store.get("contacts", ada["id"])  # replaced: the edit is lost


async def test_read_before_write_writes_without_if_match_when_the_version_holds(
    api: RefApi, ada: dict[str, Any]
) -> None:
    async with aclosing(_sink(api, concurrency="read_before_write")) as sink:
        record, calls = await _calls(
            sink.update(ada["id"], {"email": "new@example.com"}, expected_row_id=ada["rowId"])
        )
        assert record.fields == {"email": "new@example.com"} and calls == 2  # GET, PUT
        assert await sink.delete(record.id, expected_row_id=record.row_id) is True
    assert api.stats()["requests"]["by_method"] == {"GET": 2, "PUT": 1, "DELETE": 1}


async def test_read_before_write_finds_a_deleted_object_gone() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(404, json={"error": "not_found"})

    async with aclosing(_mock_sink(handler, concurrency="read_before_write")) as sink:
        with pytest.raises(SinkPermanentError) as caught:
            await sink.update("7", {"email": "x@example.com"}, expected_row_id="r1")
        assert caught.value.status_code == 404  # the agent re-creates it
        assert await sink.delete("7", expected_row_id="r1") is False
    assert sent == ["GET", "GET"]


async def test_read_before_write_sends_no_if_match_and_reads_etag_forms() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "7", "rowId": "r1", "email": "x@example.com"})

    async with aclosing(_mock_sink(handler, concurrency="read_before_write")) as sink:
        await sink.update("7", {"email": "x@example.com"}, expected_row_id='W/"r1"')
    assert [r.method for r in seen] == ["GET", "PUT"]
    assert "If-Match" not in seen[1].headers


async def test_read_before_write_needs_a_version_to_compare() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "7", "email": "x@example.com"})

    sink = _mock_sink(handler, concurrency="read_before_write", version_field=None)
    async with aclosing(sink):
        with pytest.raises(ConfigurationError, match="read_before_write needs"):
            await sink.update("7", {"email": "y@example.com"}, expected_row_id="r1")


async def test_concurrency_none_ignores_the_expected_version(
    api: RefApi, ada: dict[str, Any]
) -> None:
    async with aclosing(_sink(api, concurrency="none")) as sink:
        record = await sink.update(ada["id"], {"email": "x@example.com"}, expected_row_id="stale")
        assert record.fields == {"email": "x@example.com"}
        assert await sink.delete(ada["id"], expected_row_id="stale") is True


async def test_if_match_stays_the_default(api: RefApi, ada: dict[str, Any]) -> None:
    async with aclosing(_sink(api)) as sink:
        assert sink.settings.concurrency == "if_match"
        with pytest.raises(SinkConflictError):
            await sink.update(ada["id"], {"email": "x@example.com"}, expected_row_id="stale")


# -- patch_format ----------------------------------------------------------------------


async def test_merge_patch_is_sent_as_application_merge_patch_json(
    api: RefApi, ada: dict[str, Any]
) -> None:
    api.writes.switch(patch="merge-patch")
    sink = _sink(api, update_method="PATCH", patch_format="merge-patch")
    async with aclosing(sink):
        record = await sink.update(ada["id"], {"email": "new@example.com", "name": None})
        assert record.fields == {"email": "new@example.com"}  # null removed the field
        patched = await sink.patch(ada["id"], {"phone": "+1 555"})
        assert patched.fields == {"email": "new@example.com", "phone": "+1 555"}


async def test_a_json_patch_to_a_merge_patch_api_is_refused(
    api: RefApi, ada: dict[str, Any]
) -> None:
    api.writes.switch(patch="merge-patch")
    async with aclosing(_sink(api, update_method="PATCH")) as sink:
        with pytest.raises(SinkPermanentError) as caught:
            await sink.update(ada["id"], {"email": "new@example.com"})
    assert caught.value.status_code == 415


async def test_patch_format_json_stays_the_default() -> None:
    types: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        types.append(request.headers["Content-Type"])
        return httpx.Response(200, json={"id": "7", "rowId": "r2", "email": "x@example.com"})

    async with aclosing(_mock_sink(handler, update_method="PATCH")) as sink:
        await sink.update("7", {"email": "x@example.com"}, expected_row_id="r1")
    assert types == ["application/json"]


# -- create_method ---------------------------------------------------------------------


async def test_put_create_sends_the_client_chosen_id(api: RefApi) -> None:
    api.writes.switch(put_create=True)
    sink = _sink(api, create_method="PUT", create_id_field="code")
    async with aclosing(sink):
        record = await sink.create({"code": "C-42", "email": "ada@example.com"})
        assert record.id == "C-42" and record.row_id
        assert record.fields == {"code": "C-42", "email": "ada@example.com"}
        again = await sink.create({"code": "C-42", "email": "ada@new.example"})  # a retry
        assert again.id == "C-42"
    assert api.store.get("contacts", "C-42")["email"] == "ada@new.example"
    assert api.stats()["requests"]["by_method"] == {"PUT": 2}


@pytest.mark.parametrize("payload", [{"email": "a@b"}, {"code": ""}, {"code": None}])
async def test_put_create_without_an_id_in_the_payload_sends_nothing(
    payload: dict[str, Any],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    async with aclosing(_mock_sink(handler, create_method="PUT", create_id_field="code")) as sink:
        with pytest.raises(SinkPermanentError, match="create_id_field"):
            await sink.create(payload)


def test_create_method_put_requires_create_id_field() -> None:
    with pytest.raises(ValidationError, match="create_method PUT needs create_id_field"):
        _settings("https://crm.example.com", create_method="PUT")


# -- bulk answers matched by id ----------------------------------------------------------


def _bulk_mock(answer: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> RestSink:
    def handler(request: httpx.Request) -> httpx.Response:
        operations = json.loads(request.content)["operations"]
        return httpx.Response(200, json={"results": answer(operations)})

    return _mock_sink(handler, bulk_path=f"{PATH}/_bulk")


def _ok(operation: dict[str, Any], new_id: str = "") -> dict[str, Any]:
    if operation["op"] == "delete":
        return {"status": 204, "id": operation["id"]}
    item = {"id": operation.get("id") or new_id, "rowId": "v2", **operation["fields"]}
    return {"status": 201 if operation["op"] == "create" else 200, "item": item}


WRITES = [
    BulkWrite("update", "a", {"email": "a@x"}),
    BulkWrite("create", payload={"email": "new1@x"}),
    BulkWrite("delete", "b"),
    BulkWrite("create", payload={"email": "new2@x"}),
    BulkWrite("update", "c", {"email": "c@x"}),
]


async def test_a_reordered_bulk_answer_is_matched_by_id() -> None:
    def reversed_answer(operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [_ok(op, f"n{i}") for i, op in reversed(list(enumerate(operations)))]

    async with aclosing(_bulk_mock(reversed_answer)) as sink:
        a, new1, deleted, new2, c = await sink.bulk(WRITES)
    assert isinstance(a, ExternalRecord) and (a.id, a.fields["email"]) == ("a", "a@x")
    assert isinstance(c, ExternalRecord) and (c.id, c.fields["email"]) == ("c", "c@x")
    assert deleted is True
    # creates (no ids until the API gives them) in their order among the unclaimed results
    assert isinstance(new1, ExternalRecord) and isinstance(new2, ExternalRecord)
    assert {new1.fields["email"], new2.fields["email"]} == {"new1@x", "new2@x"}


async def test_writes_a_bulk_answer_leaves_out_each_get_their_own_transient_error() -> None:
    def partial_answer(operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [_ok(op) for op in operations if op.get("id") == "c"]  # only c's result

    async with aclosing(_bulk_mock(partial_answer)) as sink:
        a, new1, deleted, new2, c = await sink.bulk(WRITES)
    assert isinstance(c, ExternalRecord) and c.id == "c"
    for outcome in (a, new1, deleted, new2):
        assert isinstance(outcome, SinkTransientError), outcome
        assert "answered no result" in str(outcome)


async def test_a_result_naming_another_op_is_not_taken_for_a_create() -> None:
    def answer(operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"status": 404, "op": "replace"}, _ok(operations[0], "n1")]

    async with aclosing(_bulk_mock(answer)) as sink:
        (created,) = await sink.bulk([BulkWrite("create", payload={"email": "n@x"})])
    assert isinstance(created, ExternalRecord) and created.id == "n1"


async def test_bulk_put_creates_and_read_before_write_on_the_reference_api(
    api: RefApi, ada: dict[str, Any]
) -> None:
    api.writes.switch(if_match="ignore")
    bob = api.store.create("contacts", {"email": "bob@example.com"})
    api.store.merge("contacts", bob["id"], {"name": "Bob (edited in the CRM)"})
    sink = _sink(api, bulk_path=f"{PATH}/_bulk", concurrency="read_before_write",
                 create_method="PUT", create_id_field="code")  # fmt: skip
    async with aclosing(sink):
        created, updated, conflict = await sink.bulk([
            BulkWrite("create", payload={"code": "K1", "email": "k@example.com"}),
            BulkWrite("update", ada["id"], {"email": "a@example.com"}, ada["rowId"]),
            BulkWrite("update", bob["id"], {"email": "b@example.com"}, bob["rowId"]),
        ])  # fmt: skip
    assert isinstance(created, ExternalRecord) and created.id == "K1"
    assert isinstance(updated, ExternalRecord) and updated.fields == {"email": "a@example.com"}
    assert isinstance(conflict, SinkConflictError)
    assert api.store.get("contacts", bob["id"])["name"] == "Bob (edited in the CRM)"
    assert api.stats()["requests"]["bulk_operations"] == {"create": 1, "replace": 1}
