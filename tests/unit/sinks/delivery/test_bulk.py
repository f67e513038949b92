"""Bulk writes: RestSink.bulk and BatchingSink against the real reference API (in-process)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest

from cdcsync.errors import SinkConflictError, SinkPermanentError, SinkTransientError
from cdcsync.refapi import RefApi
from cdcsync.sinks.base import BulkWrite, CallCounter, ExternalRecord, call_counter
from cdcsync.sinks.delivery.bulk import BatchingSink
from cdcsync.sinks.providers.rest import RestSettings, RestSink

TOKEN = "sinks-test-token"  # the token conftest's ``api`` accepts
PATH = "/api/v1/contacts"


def rest_sink(api: RefApi, **overrides: Any) -> RestSink:
    """A REST sink on the reference API with its bulk endpoint (10 writes a call)."""
    values: dict[str, Any] = {
        "base_url": api.url,
        "collection_path": PATH,
        "object_type": "contact",
        "token": TOKEN,
        "bulk_path": f"{PATH}/_bulk",
        "bulk_max": 10,
    }
    return RestSink(RestSettings(**(values | overrides)))


def _requests(api: RefApi) -> dict[str, int]:
    return api.stats()["requests"]["by_operation"]


async def test_rest_bulk_gives_each_write_its_own_outcome(api: RefApi) -> None:
    async with aclosing(rest_sink(api)) as sink:
        ada = await sink.create({"email": "ada@example.com"})
        bob = await sink.create({"email": "bob@example.com"})
        outcomes = await sink.bulk([
            BulkWrite("create", payload={"email": "cy@example.com"}),
            BulkWrite("update", ada.id, {"email": "ada@new.example"}, ada.row_id),
            BulkWrite("update", bob.id, {"email": "bob@new.example"}, "stale-row-id"),
            BulkWrite("delete", "gone-already"),
            BulkWrite("update", "gone-already", {"email": "x@example.com"}),
        ])  # fmt: skip
    created, updated, conflict, deleted, missing = outcomes
    assert isinstance(created, ExternalRecord) and created.fields == {"email": "cy@example.com"}
    assert isinstance(updated, ExternalRecord) and updated.row_id != ada.row_id
    assert isinstance(conflict, SinkConflictError) and conflict.status_code == 412
    assert f"bulk replace {PATH}/{bob.id} answered HTTP 412" in str(conflict)
    assert deleted is False  # already gone, as delete() says
    assert isinstance(missing, SinkPermanentError) and missing.status_code == 404
    assert _requests(api) == {"create": 2, "bulk": 1}


async def test_patch_updates_become_merge_operations(api: RefApi) -> None:
    async with aclosing(rest_sink(api, update_method="PATCH")) as sink:
        ada = await sink.create({"email": "ada@example.com", "name": "Ada"})
        (merged, _) = await sink.bulk([
            BulkWrite("update", ada.id, {"name": "Ada L."}),
            BulkWrite("create", payload={"email": "b@example.com"}),
        ])  # fmt: skip
    assert isinstance(merged, ExternalRecord)
    assert merged.fields == {"email": "ada@example.com", "name": "Ada L."}
    assert api.stats()["requests"]["bulk_operations"] == {"merge": 1, "create": 1}


async def test_a_failed_bulk_call_fails_every_write_alike(api: RefApi) -> None:
    api.inject_fault(status=503, path=f"{PATH}/_bulk")
    async with aclosing(rest_sink(api)) as sink:
        with pytest.raises(SinkTransientError, match="HTTP 503"):
            await sink.bulk([BulkWrite("create", payload={"email": f"{i}@x.io"}) for i in range(3)])
    assert api.store.counts() == {}


async def test_without_bulk_path_there_is_no_bulk_form(api: RefApi) -> None:
    async with aclosing(rest_sink(api, bulk_path=None)) as sink:
        assert sink.bulk_max == 0
        with pytest.raises(NotImplementedError):
            await sink.bulk([BulkWrite("create", payload={})])
        with pytest.raises(ValueError, match="neither a bulk nor a find_many form"):
            BatchingSink(sink)


# -- BatchingSink: concurrent writes share calls, each keeps its own outcome ------------


async def _write_concurrently(sink: BatchingSink, n: int, ids: list[str]) -> list[Any]:
    """n operations as the agent runs them: concurrent tasks, each with its own counter."""

    async def one(i: int) -> tuple[Any, int]:
        counter = CallCounter(entity="contact", entity_id=str(i))
        call_counter.set(counter)
        try:
            if i < len(ids):
                result: Any = await sink.update(ids[i], {"email": f"{i}@new.example"})
            else:
                result = await sink.create({"email": f"{i}@example.com"})
        except Exception as exc:  # the outcome under test
            result = exc
        return result, counter.calls

    return await asyncio.gather(*(one(i) for i in range(n)))


async def test_concurrent_writes_go_out_bulk_max_at_a_time(api: RefApi) -> None:
    async with aclosing(BatchingSink(rest_sink(api, bulk_max=10))) as sink:
        existing = [await sink.inner.create({"email": f"{i}@example.com"}) for i in range(5)]
        outcomes = await _write_concurrently(sink, 25, [r.id for r in existing])
    assert all(isinstance(r, ExternalRecord) for r, _ in outcomes)
    assert [r.fields["email"] for r, _ in outcomes[:5]] == [f"{i}@new.example" for i in range(5)]
    assert all(calls == 1 for _, calls in outcomes)  # each write went out in one call
    assert api.store.counts() == {"contacts": 25}
    assert _requests(api) == {"create": 5, "bulk": 3}  # 25 writes: 10 + 10 + 5


async def test_one_write_alone_is_a_plain_call(api: RefApi) -> None:
    async with aclosing(BatchingSink(rest_sink(api))) as sink:
        created = await sink.create({"email": "ada@example.com"})
        assert await sink.delete(created.id) is True
        assert await sink.delete(created.id) is False
    assert _requests(api) == {"create": 1, "delete": 2}


async def test_a_write_error_stays_with_its_write(api: RefApi) -> None:
    async with aclosing(BatchingSink(rest_sink(api))) as sink:
        ada = await sink.create({"email": "ada@example.com"})
        results = await asyncio.gather(
            sink.update(ada.id, {"email": "a@x.io"}, expected_row_id="stale"),
            sink.update(ada.id, {"email": "b@x.io"}, expected_row_id=ada.row_id),
            sink.create({"email": "c@x.io"}),
            return_exceptions=True,
        )
    assert isinstance(results[0], SinkConflictError)
    assert isinstance(results[1], ExternalRecord) and isinstance(results[2], ExternalRecord)


async def test_a_failed_bulk_call_reaches_every_waiting_write(api: RefApi) -> None:
    api.inject_fault(status=429, retry_after=3, path=f"{PATH}/_bulk")
    async with aclosing(BatchingSink(rest_sink(api))) as sink:
        outcomes = await _write_concurrently(sink, 4, [])
    errors = [r for r, _ in outcomes]
    assert all(type(e) is SinkTransientError and e.retry_after == 3.0 for e in errors)
    assert len({id(e) for e in errors}) == 4  # one exception each, tracebacks unmixed
    assert all(calls == 1 for _, calls in outcomes) and api.store.counts() == {}
