"""Gathered lookups: the natural-key finds of concurrent creates share one request
(RestSink.find_many and BatchingSink against the real reference API, in-process)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from cdcsync.errors import SinkPermanentError, SinkTransientError
from cdcsync.refapi import RefApi
from cdcsync.sinks.base import CallCounter, ExternalRecord, call_counter
from cdcsync.sinks.delivery.bulk import BatchingSink
from cdcsync.sinks.providers.rest import RestSettings, RestSink
from tests.unit.sinks.delivery.test_bulk import PATH, TOKEN, rest_sink


def _sink(api: RefApi, **overrides: Any) -> BatchingSink:
    # django-filter's form, which the reference API takes; no bulk endpoint
    lookups = {"bulk_path": None, "find_many_param": "{field}__in", "find_many_max": 10}
    return BatchingSink(rest_sink(api, **(lookups | overrides)))


def _lists(api: RefApi) -> int:
    return int(api.stats()["requests"]["by_operation"].get("list", 0))


async def _find_concurrently(sink: BatchingSink, emails: list[str]) -> list[tuple[Any, int]]:
    """Lookups as the agent makes them: concurrent tasks, each with its own counter."""

    async def one(i: int, email: str) -> tuple[Any, int]:
        counter = CallCounter(entity="contact", entity_id=str(i))
        call_counter.set(counter)
        try:
            found: Any = await sink.find({"email": email})
        except Exception as exc:  # the outcome under test
            found = exc
        return found, counter.calls

    return await asyncio.gather(*(one(i, e) for i, e in enumerate(emails)))


async def test_concurrent_lookups_share_one_request(api: RefApi) -> None:
    async with aclosing(_sink(api)) as sink:
        made = {e: await sink.inner.create({"email": e}) for e in ("a@x.io", "b@x.io", "c@x.io")}
        emails = ["a@x.io", "n1@x.io", "b@x.io", "n2@x.io", "a@x.io", "c@x.io", "n3@x.io"]
        outcomes = await _find_concurrently(sink, emails)
    found = [r.id if isinstance(r, ExternalRecord) else r for r, _ in outcomes]
    assert found == [made["a@x.io"].id, None, made["b@x.io"].id, None, made["a@x.io"].id,
                     made["c@x.io"].id, None]  # fmt: skip
    assert all(calls == 1 for _, calls in outcomes)  # each lookup counts the shared call
    assert _lists(api) == 1


async def test_lookups_go_out_find_many_max_at_a_time(api: RefApi) -> None:
    async with aclosing(_sink(api, find_many_max=10)) as sink:
        outcomes = await _find_concurrently(sink, [f"{i}@x.io" for i in range(25)])
    assert [r for r, _ in outcomes] == [None] * 25
    assert _lists(api) == 3  # 10 + 10 + 5


async def test_a_duplicated_natural_key_fails_only_its_lookup(api: RefApi) -> None:
    async with aclosing(_sink(api)) as sink:
        await sink.inner.create({"email": "twice@x.io"})
        await sink.inner.create({"email": "twice@x.io"})
        once = await sink.inner.create({"email": "once@x.io"})
        (twice, _), (found, _) = await _find_concurrently(sink, ["twice@x.io", "once@x.io"])
    assert isinstance(twice, SinkPermanentError)
    assert "natural key ['email'] is not unique" in str(twice)
    assert isinstance(found, ExternalRecord) and found.id == once.id


async def test_a_full_answer_falls_back_to_one_lookup_each(api: RefApi) -> None:
    # Two values, room for 2 * 2 + 1 = 5 records; 5 came back, so more may be unread.
    async with aclosing(_sink(api)) as sink:
        for email in ["a@x.io"] * 3 + ["b@x.io"] * 2:
            await sink.inner.create({"email": email})
        outcomes = await _find_concurrently(sink, ["a@x.io", "b@x.io"])
    assert all(isinstance(r, SinkPermanentError) and "not unique" in str(r) for r, _ in outcomes)
    assert [calls for _, calls in outcomes] == [2, 2]  # the shared call, then its own
    assert _lists(api) == 3


async def test_a_failed_lookup_call_reaches_every_waiting_lookup(api: RefApi) -> None:
    api.inject_fault(status=503, method="GET", path=PATH)
    async with aclosing(_sink(api)) as sink:
        outcomes = await _find_concurrently(sink, ["a@x.io", "b@x.io", "c@x.io"])
    assert all(isinstance(r, SinkTransientError) and "HTTP 503" in str(r) for r, _ in outcomes)
    assert len({id(r) for r, _ in outcomes}) == 3  # one exception each


async def test_an_api_that_ignores_the_filter_is_not_trusted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["email__in"] == "a@x.io,b@x.io"
        assert request.url.params["limit"] == "5"  # room for each value twice, and one more
        return httpx.Response(200, json={"items": [{"id": "1", "email": "other@x.io"}]})

    settings = RestSettings(base_url="https://crm.example.com", collection_path=PATH,
                            object_type="contact", find_many_param="{field}__in")  # fmt: skip
    inner = RestSink(settings, transport=httpx.MockTransport(handler), environ={})
    async with aclosing(BatchingSink(inner)) as sink:
        outcomes = await _find_concurrently(sink, ["a@x.io", "b@x.io"])
    for outcome, _ in outcomes:
        assert isinstance(outcome, SinkPermanentError)
        assert "ignored the filter on 'email' (object 1 is not one of the values)" in str(outcome)


async def test_a_value_holding_a_comma_is_looked_up_alone(api: RefApi) -> None:
    async with aclosing(_sink(api)) as sink:
        made = await sink.inner.create({"email": "a,b@x.io"})
        (found, _), (other, _) = await _find_concurrently(sink, ["a,b@x.io", "c@x.io"])
    assert isinstance(found, ExternalRecord) and found.id == made.id
    assert other is None
    assert _lists(api) == 2  # declined without a request, then one each


async def test_without_find_many_param_lookups_go_alone(api: RefApi) -> None:
    sink = RestSink(RestSettings(base_url=api.url, collection_path=PATH, token=TOKEN,
                                 object_type="contact"))  # fmt: skip
    async with aclosing(sink):
        assert sink.find_many_max == 0
        with pytest.raises(ValueError, match="neither a bulk nor a find_many form"):
            BatchingSink(sink)


async def test_a_lookup_never_waits_on_a_gathered_call_that_broke(api: RefApi) -> None:
    class Broken(RestSink):
        async def find_many(self, field: str, values: Any) -> Any:
            return [object()]  # not a record: reading it raises after the call

    settings = RestSettings(base_url=api.url, collection_path=PATH, object_type="contact",
                            token=TOKEN, find_many_param="{field}__in")  # fmt: skip
    async with aclosing(BatchingSink(Broken(settings))) as sink:
        outcomes = await asyncio.wait_for(_find_concurrently(sink, ["a@x.io", "b@x.io"]), 5)
    for outcome, _ in outcomes:
        assert isinstance(outcome, RuntimeError)
        assert "ended without an answer for this item: AttributeError" in str(outcome)
