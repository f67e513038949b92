"""RestSink against the real reference API (in-process) and, for transport failures, httpx mocks."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cdcsync.errors import (
    ConfigurationError,
    SinkConflictError,
    SinkError,
    SinkPermanentError,
    SinkTransientError,
)
from cdcsync.refapi import RefApi
from cdcsync.sinks.base import CallCounter, ExternalRecord, call_counter
from cdcsync.sinks.delivery.ratelimit import parse_retry_after
from cdcsync.sinks.providers.rest import RestSettings, RestSink

TOKEN = "s3cr3t-token-for-tests-7f1c"
TOKEN_ENV = "CDCSYNC_TEST_API_TOKEN"
PATH = "/api/v1/contacts"


def _settings(base_url: str, **overrides: Any) -> RestSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "collection_path": PATH,
        "object_type": "contact",
        "token_env": TOKEN_ENV,
    }
    return RestSettings(**(values | overrides))


def _sink(base_url: str, *, token: str = TOKEN, **overrides: Any) -> RestSink:
    return RestSink(_settings(base_url, **overrides), environ={TOKEN_ENV: token})


def _mock_sink(handler: Callable[[httpx.Request], httpx.Response], **overrides: Any) -> RestSink:
    settings = _settings("https://crm.example.com", **overrides)
    return RestSink(settings, transport=httpx.MockTransport(handler), environ={TOKEN_ENV: TOKEN})


@pytest.fixture
def api_token() -> str:
    """The token the reference API (``api``, in conftest.py) accepts."""
    return TOKEN


@pytest.fixture
async def sink(api: RefApi) -> AsyncIterator[RestSink]:
    async with aclosing(_sink(api.url, page_size=3)) as rest:
        yield rest


async def _failure(call: Any) -> SinkError:
    with pytest.raises(SinkError) as caught:
        await call
    assert TOKEN not in str(caught.value)
    return caught.value


# -- the Sink contract on the real reference API ------------------------------


async def test_create_then_get_round_trips_fields_id_and_row_id(
    api: RefApi, sink: RestSink
) -> None:
    created = await sink.create({"email": "ada@example.com", "firstName": "Ada", "age": 36})
    stored = api.store.get("contacts", created.id)
    assert created == ExternalRecord(
        id=stored["id"],
        row_id=stored["rowId"],
        fields={"email": "ada@example.com", "firstName": "Ada", "age": 36},
    )
    assert await sink.get(created.id) == created


async def test_get_missing_is_none(sink: RestSink) -> None:
    assert await sink.get("does-not-exist") is None


async def test_update_replaces_fields_and_changes_row_id(sink: RestSink) -> None:
    created = await sink.create({"email": "ada@example.com", "phone": "1"})
    updated = await sink.update(created.id, {"email": "ada@example.com", "phone": "2"})
    again = await sink.update(created.id, {"email": "ada@example.com", "phone": "2"})
    assert updated.id == again.id == created.id
    assert len({created.row_id, updated.row_id, again.row_id}) == 3
    assert await sink.get(created.id) == again
    assert again.fields == {"email": "ada@example.com", "phone": "2"}


async def test_update_of_a_deleted_object_is_permanent_404(sink: RestSink) -> None:
    created = await sink.create({"email": "ada@example.com"})
    await sink.delete(created.id)
    error = await _failure(sink.update(created.id, {"email": "x"}))
    assert isinstance(error, SinkPermanentError) and error.status_code == 404
    assert f"PUT {PATH}/{created.id}" in str(error) and "does not exist" in str(error)


async def test_find_by_natural_key(sink: RestSink) -> None:
    ada = await sink.create({"email": "ada@example.com", "age": 36, "vip": True})
    await sink.create({"email": "bob@example.com", "age": 41, "vip": False})
    assert await sink.find({"email": "ada@example.com"}) == ada
    assert await sink.find({"age": 36, "vip": True}) == ada
    assert await sink.find({"email": "ada@example.com", "age": 41}) is None
    assert await sink.find({"email": "nobody@example.com"}) is None


async def test_find_with_a_duplicate_natural_key_is_permanent(sink: RestSink) -> None:
    for _ in range(3):
        await sink.create({"email": "dup@example.com"})
    error = await _failure(sink.find({"email": "dup@example.com"}))
    assert isinstance(error, SinkPermanentError)
    assert "not unique" in str(error) and "['email']" in str(error)


@pytest.mark.parametrize(
    ("key", "fragment"),
    [({}, "without natural key"), ({"limit": 1}, "paging"), ({"tags": ["a"]}, "not a scalar")],
)
async def test_find_refuses_keys_it_cannot_filter_on(
    sink: RestSink, key: dict[str, Any], fragment: str
) -> None:
    error = await _failure(sink.find(key))
    assert isinstance(error, SinkPermanentError) and fragment in str(error)


async def test_find_detects_an_api_that_ignores_filters() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": [{"id": "1", "email": "other@x"}], "next": None})

    async with aclosing(_mock_sink(handler)) as sink:
        error = await _failure(sink.find({"email": "ada@example.com"}))
    assert isinstance(error, SinkPermanentError) and "ignored the filters" in str(error)


async def test_delete_twice_is_true_then_false(api: RefApi, sink: RestSink) -> None:
    created = await sink.create({"email": "ada@example.com"})
    assert await sink.delete(created.id) is True
    assert await sink.delete(created.id) is False
    assert api.store.counts() == {"contacts": 0}


async def test_list_follows_cursors_over_several_pages(api: RefApi, sink: RestSink) -> None:
    created = [await sink.create({"email": f"{i}@example.com"}) for i in range(10)]
    before = api.stats()["requests"]["by_operation"].get("list", 0)
    listed = [record async for record in sink.list()]
    assert listed == created
    assert api.stats()["requests"]["by_operation"]["list"] - before == 4  # 3+3+3+1


async def test_list_of_an_empty_collection_is_empty(sink: RestSink) -> None:
    assert [record async for record in sink.list()] == []


async def test_ids_with_reserved_characters_are_quoted(api: RefApi, sink: RestSink) -> None:
    assert await sink.get("a/b?c") is None
    assert api.stats()["requests"]["by_kind"] == {"item": 1}


def test_link_defaults_to_the_object_url_and_follows_a_template() -> None:
    default = RestSink(_settings("https://crm.example.com/"), environ={TOKEN_ENV: TOKEN})
    assert default.link("a b") == "https://crm.example.com/api/v1/contacts/a%20b"
    custom = _settings("https://crm.example.com", link_template="{base_url}/ui/{object_type}s/{id}")
    assert RestSink(custom, environ={TOKEN_ENV: TOKEN}).link("7") == (
        "https://crm.example.com/ui/contacts/7"
    )


# -- paging shapes of other APIs (mock transport) --------------------------------


async def test_list_reads_nested_fields_and_follows_same_origin_next_links() -> None:
    pages = {
        None: {"data": {"rows": [{"key": 1, "etag": "v1", "n": 1}]}, "paging": {"after": "p2"}},
        "p2": {
            "data": {"rows": [{"key": 2, "etag": "v2", "n": 2}]},
            "paging": {"after": "https://crm.example.com/api/v1/contacts?page=3"},
        },
        "3": {"data": {"rows": [{"key": 3, "n": 3}]}, "paging": {}},
    }
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        params = request.url.params
        return httpx.Response(200, json=pages[params.get("after", params.get("page"))])

    shape = {"id_field": "key", "version_field": "etag", "items_field": "data.rows"}
    paging = {"next_field": "paging.after", "cursor_param": "after", "limit_param": "size"}
    async with aclosing(_mock_sink(handler, **shape, **paging, page_size=1)) as sink:
        listed = [record async for record in sink.list()]
    assert listed == [
        ExternalRecord(id="1", row_id="v1", fields={"n": 1}),
        ExternalRecord(id="2", row_id="v2", fields={"n": 2}),
        ExternalRecord(id="3", row_id=None, fields={"n": 3}),
    ]
    assert seen == [
        "https://crm.example.com/api/v1/contacts?size=1",
        "https://crm.example.com/api/v1/contacts?size=1&after=p2",
        "https://crm.example.com/api/v1/contacts?page=3",
    ]


@pytest.mark.parametrize(
    ("next_value", "fragment"),
    [("same", "repeated the cursor"), ("https://evil.example.net/steal", "another origin")],
)
async def test_list_refuses_cursor_loops_and_foreign_next_links(
    next_value: str, fragment: str
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"items": [], "next": next_value})

    async with aclosing(_mock_sink(handler)) as sink:
        error = await _failure(anext(aiter(sink.list())))
    assert isinstance(error, SinkPermanentError) and fragment in str(error)
    assert all(request.url.host == "crm.example.com" for request in calls)


# -- auth ------------------------------------------------------------------------


async def test_requests_carry_the_bearer_token_from_the_environment(
    api: RefApi, sink: RestSink
) -> None:
    await sink.create({"email": "ada@example.com"})
    assert api.stats()["requests"]["by_status"] == {"201": 1}


async def test_wrong_token_is_permanent_401_naming_the_variable_not_the_secret(
    api: RefApi,
) -> None:
    async with aclosing(_sink(api.url, token="wrong-" + TOKEN)) as sink:
        error = await _failure(sink.get("x"))
    assert isinstance(error, SinkPermanentError) and error.status_code == 401
    assert TOKEN_ENV in str(error) and "wrong-" not in str(error)


async def test_missing_token_is_401_without_token_env(api: RefApi) -> None:
    settings = _settings(api.url, token_env=None)
    async with aclosing(RestSink(settings)) as sink:
        error = await _failure(sink.list().__anext__())
    assert isinstance(error, SinkPermanentError) and error.status_code == 401


def test_unset_token_variable_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=TOKEN_ENV):
        RestSink(_settings("https://crm.example.com"), environ={TOKEN_ENV: "  "})


async def test_custom_auth_header_without_scheme() -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(404)

    async with aclosing(_mock_sink(handler, auth_header="X-Api-Key", auth_scheme="")) as sink:
        assert await sink.get("1") is None
    assert seen[0]["X-Api-Key"] == TOKEN and "Authorization" not in seen[0]


# -- error mapping: HTTP statuses from the real server's fault injection -------------


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (500, None, None),
        (502, None, None),
        (503, 2, 2.0),
        (504, None, None),
        (408, None, None),
        (429, None, 1.0),  # the reference API sends Retry-After: 1 by default
        (429, 7.5, 7.5),
    ],
)
async def test_5xx_408_429_are_transient_with_retry_after(
    api: RefApi, sink: RestSink, status: int, retry_after: float | None, expected: float | None
) -> None:
    api.inject_fault(status=status, retry_after=retry_after, method="POST")
    error = await _failure(sink.create({"email": "ada@example.com"}))
    assert type(error) is SinkTransientError
    assert (error.status_code, error.retry_after) == (status, expected)
    assert f"POST {PATH}" in str(error) and "retry" in str(error)
    assert api.store.counts() == {}


async def test_retry_after_as_http_date(api: RefApi, sink: RestSink) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    api.inject_fault(status=503, retry_after=format_datetime(when, usegmt=True))
    error = await _failure(sink.get("x"))
    assert isinstance(error, SinkTransientError)
    assert error.retry_after is not None and 110 <= error.retry_after <= 120


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (400, "check the field mapping"),
        (422, "check the field mapping"),
        (403, "lacks permission"),
        (409, "changed concurrently"),
        (412, "changed concurrently"),
        (410, "retrying will not help"),
    ],
)
async def test_other_4xx_are_permanent_with_status_and_body_excerpt(
    api: RefApi, sink: RestSink, status: int, hint: str
) -> None:
    api.inject_fault(status=status, body='{"error": "rejected", "detail": "x' + "y" * 500 + '"}')
    error = await _failure(sink.create({"email": "ada@example.com"}))
    expected = SinkConflictError if status in (409, 412) else SinkPermanentError
    assert type(error) is expected and error.status_code == status
    assert error.retry_after is None
    message = str(error)
    assert f"POST {PATH} answered HTTP {status}" in message and hint in message
    assert '{"error": "rejected"' in message and len(message) < 400


async def test_update_with_a_stale_row_id_is_a_conflict(sink: RestSink) -> None:
    created = await sink.create({"email": "ada@example.com", "name": "Ada"})
    changed = await sink.update(created.id, {"email": "ada@example.com", "name": "Ada L."})
    again = await sink.update(
        created.id, {"email": "ada@example.com", "name": "A"}, expected_row_id=changed.row_id
    )
    assert again.row_id != changed.row_id
    error = await _failure(sink.update(created.id, {"name": "B"}, expected_row_id=changed.row_id))
    assert isinstance(error, SinkConflictError) and error.status_code == 412
    assert (await sink.get(created.id)).fields["name"] == "A"
    assert isinstance(
        await _failure(sink.delete(created.id, expected_row_id=created.row_id)), SinkConflictError
    )
    assert await sink.delete(created.id, expected_row_id=again.row_id) is True


async def test_invalid_json_in_a_2xx_is_permanent(api: RefApi, sink: RestSink) -> None:
    api.inject_fault(status=200, body="<html>maintenance</html>", method="GET")
    error = await _failure(sink.get("x"))
    assert type(error) is SinkPermanentError and "not JSON" in str(error)
    assert "<html>maintenance</html>" in str(error)


@pytest.mark.parametrize(
    "body", ['["a list"]', '{"no": "id"}', '{"items": "not a list"}', '{"items": [{"id": ""}]}']
)
async def test_json_of_the_wrong_shape_is_permanent(api: RefApi, sink: RestSink, body: str) -> None:
    api.inject_fault(status=200, body=body, count=2)
    assert isinstance(await _failure(sink.get("x")), SinkPermanentError)
    assert isinstance(await _failure(sink.list().__anext__()), SinkPermanentError)


async def test_a_slow_api_is_a_transient_timeout(api: RefApi) -> None:
    api.inject_fault(latency_ms=2000)
    async with aclosing(_sink(api.url, timeout_s=0.2)) as sink:
        error = await _failure(sink.get("x"))
    assert type(error) is SinkTransientError and "timed out after 0.2s" in str(error)


async def test_a_closed_port_is_a_transient_connection_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with aclosing(_sink(f"http://127.0.0.1:{port}")) as sink:
        error = await _failure(sink.create({"email": "ada@example.com"}))
    assert type(error) is SinkTransientError and "Cannot connect to host" in str(error)


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("reset", "ServerDisconnectedError"),
        ("truncate", "ClientPayloadError"),  # the body was cut short
        ("garbage", "ClientResponseError"),  # the answer was not HTTP
    ],
)
async def test_a_broken_connection_is_transient_and_the_pool_recovers(
    api: RefApi, sink: RestSink, kind: str, what: str
) -> None:
    await sink.create({"email": "warm@example.com"})  # a pooled connection to break
    api.inject_fault(connection=kind, method="POST")
    error = await _failure(sink.create({"email": "ada@example.com"}))
    assert type(error) is SinkTransientError and error.status_code is None
    assert f"POST {PATH} failed in transit ({what}" in str(error) and "will retry" in str(error)
    assert api.store.counts() == {"contacts": 1}  # not served: the retry creates it once
    await sink.create({"email": "ada@example.com"})
    assert api.store.counts() == {"contacts": 2}


async def test_an_idempotent_read_on_a_dropped_keep_alive_connection_is_sent_again(
    api: RefApi, sink: RestSink
) -> None:
    created = await sink.create({"email": "ada@example.com"})
    api.inject_fault(connection="reset", method="GET")  # e.g. a proxy's idle timeout
    fetched = await sink.get(created.id)  # aiohttp resends a GET on a fresh connection
    assert fetched is not None and fetched.id == created.id
    assert api.stats()["faults"]["fired"] == 1


# -- error mapping: transport failures from a mock transport ----------------------


@pytest.mark.parametrize(
    ("exc_class", "expected"),
    [
        (httpx.ConnectTimeout, SinkTransientError),
        (httpx.ReadTimeout, SinkTransientError),
        (httpx.WriteTimeout, SinkTransientError),
        (httpx.PoolTimeout, SinkTransientError),
        (httpx.ConnectError, SinkTransientError),
        (httpx.ReadError, SinkTransientError),
        (httpx.WriteError, SinkTransientError),
        (httpx.CloseError, SinkTransientError),
        (httpx.RemoteProtocolError, SinkTransientError),
        (httpx.ProxyError, SinkTransientError),
        (httpx.DecodingError, SinkTransientError),
        (httpx.LocalProtocolError, SinkPermanentError),
        (httpx.UnsupportedProtocol, SinkPermanentError),
        (httpx.TooManyRedirects, SinkPermanentError),
    ],
)
async def test_every_transport_failure_maps_to_a_sink_error(
    exc_class: type[httpx.RequestError], expected: type[SinkError]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_class(f"simulated with Bearer {TOKEN}", request=request)

    async with aclosing(_mock_sink(handler)) as sink:
        error = await _failure(sink.update("42", {"email": "ada@example.com"}))
    assert type(error) is expected
    assert isinstance(error.__cause__, exc_class)
    assert f"PUT {PATH}/42" in str(error)
    assert "timed out" in str(error) or "Bearer **********" in str(error)


async def test_a_redirect_is_permanent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"Location": "https://elsewhere.example.com/"})

    async with aclosing(_mock_sink(handler)) as sink:
        error = await _failure(sink.get("1"))
    assert type(error) is SinkPermanentError and "redirect" in str(error)


# -- the secret stays secret ------------------------------------------------------------


async def test_the_token_never_appears_in_errors_reprs_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def echo(request: httpx.Request) -> httpx.Response:  # an API that echoes the header back
        status = {"GET": 400, "PUT": 503, "POST": 200, "DELETE": 422}[request.method]
        header = request.headers["Authorization"]
        if request.method == "DELETE":  # the excerpt's 200-character cut falls inside the token
            return httpx.Response(status, text="." * (200 - len("Bearer ") - 4) + header)
        return httpx.Response(status, text=json.dumps({"you sent": header}) + "}")

    caplog.set_level(logging.DEBUG)
    async with aclosing(_mock_sink(echo)) as sink:
        errors = [
            await _failure(sink.get("1")),
            await _failure(sink.update("1", {})),
            await _failure(sink.create({})),
            await _failure(sink.delete("1")),
        ]
        texts = [str(e) for e in errors] + [repr(sink), repr(sink.settings)]
        texts.append(repr(sink._client.auth))
    assert ["Bearer **********" in str(e) for e in errors] == [True, True, True, False], texts
    assert not [text for text in texts if TOKEN[:4] in text]
    assert TOKEN[:4] not in caplog.text


# -- call counting -------------------------------------------------------------------


async def test_each_http_request_counts_against_the_current_operation(sink: RestSink) -> None:
    await sink.create({"email": "uncounted@example.com"})  # no counter set: nothing breaks

    async def operation(emails: list[str]) -> int:
        counter = CallCounter()
        token = call_counter.set(counter)
        try:
            for email in emails:
                if await sink.find({"email": email}) is None:
                    await sink.create({"email": email})
            await sink.delete("missing")
        finally:
            call_counter.reset(token)
        return counter.calls

    one, three = await asyncio.gather(operation(["a@x"]), operation(["b@x", "c@x", "d@x"]))
    assert (one, three) == (3, 7)

    counter = CallCounter()
    token = call_counter.set(counter)
    try:
        assert len([r async for r in sink.list()]) == 5  # pages of 3: 2 calls
    finally:
        call_counter.reset(token)
    assert counter.calls == 2


async def test_failed_calls_count_too(api: RefApi, sink: RestSink) -> None:
    api.inject_fault(status=503)
    counter = CallCounter()
    token = call_counter.set(counter)
    try:
        await _failure(sink.get("x"))
    finally:
        call_counter.reset(token)
    assert counter.calls == 1


# -- settings and Retry-After parsing ----------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_url": "ftp://crm.example.com"},
        {"base_url": "crm.example.com"},
        {"base_url": "http://crm.example.com:port"},
        {"base_url": "http://"},
        {"collection_path": "api/v1/contacts"},
        {"link_template": "{base_url}/{unknown}"},
        {"page_size": 0},
        {"timeout_s": 0},
    ],
)
def test_invalid_settings_are_rejected(overrides: dict[str, Any]) -> None:
    values = {"base_url": "https://crm.example.com", "collection_path": PATH, "object_type": "c"}
    with pytest.raises(ValidationError):
        RestSettings(**(values | overrides))


def test_settings_are_frozen_and_normalised() -> None:
    settings = _settings("https://crm.example.com/tenant/", collection_path="/contacts/")
    assert (settings.base_url, settings.collection_path) == (
        "https://crm.example.com/tenant",
        "/contacts",
    )
    with pytest.raises(ValidationError):
        settings.page_size = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("5", 5.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("soon", None),
        ("Thu, 01 Jan 2026 00:01:30 GMT", 90.0),
        ("Wed, 31 Dec 2025 23:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == expected
