"""RestSink's auth settings (header, basic, query, oauth2, none) against the reference API
with the auth habits of other APIs, and httpx mocks for token servers that fail."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cdcsync.errors import ConfigurationError, SinkPermanentError, SinkTransientError
from cdcsync.refapi import RefApi
from cdcsync.schemas.config import ResolvedTarget, SecretRef
from cdcsync.schemas.events import AuditRecord
from cdcsync.sinks.providers.rest import RestSettings, RestSink
from cdcsync.sinks.providers.rest.auth import OAuth2ClientCredentials
from cdcsync.sinks.targets import build_target, check_target

TOKEN = "k3y/with+odd=chars&9f2"  # odd characters: URL-encoded in a query it looks different
PATH = "/api/v1/contacts"


@pytest.fixture
def api_token() -> str:
    """The token the reference API (``api``, in conftest.py) accepts."""
    return TOKEN


def _settings(base_url: str, **overrides: Any) -> RestSettings:
    values: dict[str, Any] = {"base_url": base_url, "collection_path": PATH,
                              "object_type": "contact", "token": TOKEN}  # fmt: skip
    return RestSettings(**(values | overrides))


def _oauth(api_url: str, **overrides: Any) -> dict[str, Any]:
    return {"auth": "oauth2", "token": None, "token_url": f"{api_url}/oauth/token",
            "client_id": "cdcsync", "client_secret": TOKEN} | overrides  # fmt: skip


class ListAuditor:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def record(self, record: AuditRecord) -> None:
        self.records.append(record)


def _encoded_forms(secret: str) -> list[str]:
    return [secret, httpx.QueryParams({"k": secret}).get("k"), str(httpx.QueryParams(k=secret))]


# -- basic, header, none ----------------------------------------------------------------


async def test_basic_auth_sends_the_username_and_the_token_as_password(api: RefApi) -> None:
    api.writes.switch(auth="basic", basic_user="sync")
    async with aclosing(RestSink(_settings(api.url, auth="basic", username="sync"))) as sink:
        created = await sink.create({"email": "ada@example.com"})
        assert (await sink.get(created.id)) == created
    wrong = RestSink(_settings(api.url, auth="basic", username="sync", token="wrong"))
    async with aclosing(wrong):
        with pytest.raises(SinkPermanentError) as caught:
            await wrong.get(created.id)
    assert caught.value.status_code == 401 and "wrong" not in str(caught.value)


async def test_a_bare_header_token_and_no_credential() -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={"id": "7", "rowId": "r1"})

    header = _settings("https://crm.example.com", auth_header="X-API-Key", auth_scheme="")
    none = _settings("https://crm.example.com", auth="none")
    for settings in (header, none):
        async with aclosing(RestSink(settings, transport=httpx.MockTransport(handler))) as sink:
            await sink.get("7")
    assert seen[0]["X-API-Key"] == TOKEN and "Authorization" not in seen[0]
    assert "X-API-Key" not in seen[1] and "Authorization" not in seen[1]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"auth": "basic"}, "auth basic needs username"),
        ({"auth": "basic", "username": "u", "token": None}, "auth basic needs"),
        ({"auth": "query", "token": None}, "auth query needs the API key"),
        ({"auth": "oauth2", "client_id": "c"}, "auth oauth2 needs token_url"),
        (
            {"auth": "oauth2", "token_url": "/oauth/token", "client_id": "c", "client_secret": "s"},
            "token_url must be an absolute",
        ),
    ],
)
def test_each_auth_mode_needs_its_settings(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _settings("https://crm.example.com", **overrides)


# -- query: the key in a query parameter, never shown -------------------------------------


async def test_query_auth_sends_the_key_as_a_parameter_and_never_shows_it(
    api: RefApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.writes.switch(auth="query", query_param="key")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.INFO)  # its request lines show the URL
    auditor = ListAuditor()
    settings = _settings(api.url, auth="query", auth_query_param="key", page_size=2)
    try:
        async with aclosing(RestSink(settings, auditor=auditor)) as sink:
            for n in range(3):
                await sink.create({"email": f"{n}@example.com"})
            assert len([r async for r in sink.list()]) == 3  # the key is no listing filter
            api.inject_fault(status=400, body=f'{{"message": "bad key {TOKEN}"}}')
            with pytest.raises(SinkPermanentError) as caught:
                await sink.get("whatever")
            shown = [str(caught.value), repr(caught.value), repr(sink), repr(sink.auth),
                     repr(sink.settings), *map(repr, auditor.records)]  # fmt: skip
            shown += [r.getMessage() for r in caplog.records if r.name.startswith(("httpx",
                      "cdcsync.sinks"))]  # fmt: skip
    finally:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    assert "**********" in str(caught.value) and "HTTP Request" in caplog.text
    assert len(auditor.records) == 6 and all(r.target.startswith(PATH) for r in auditor.records)
    for text in shown:
        for form in _encoded_forms(TOKEN):
            assert form not in text


async def test_a_transport_error_naming_the_url_does_not_show_the_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    settings = _settings("https://crm.example.com", auth="query")
    async with aclosing(RestSink(settings, transport=httpx.MockTransport(handler))) as sink:
        with pytest.raises(SinkTransientError) as caught:
            await sink.get("7")
    for form in _encoded_forms(TOKEN):
        assert form not in str(caught.value)


# -- oauth2: client credentials ----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _oauth_sink(api: RefApi, **overrides: Any) -> tuple[RestSink, FakeClock]:
    sink = RestSink(_settings(api.url, **_oauth(api.url, **overrides)))
    clock = FakeClock()
    assert isinstance(sink.auth, OAuth2ClientCredentials)
    sink.auth.clock = clock
    return sink, clock


async def test_oauth2_fetches_a_token_lazily_and_refreshes_it_before_it_expires(
    api: RefApi,
) -> None:
    api.writes.switch(auth="oauth2", token_ttl_s=100)
    sink, clock = _oauth_sink(api)
    async with aclosing(sink):
        assert api.stats()["oauth"]["tokens_issued"] == 0  # not before the first call
        await asyncio.gather(*(sink.create({"email": f"{n}@x"}) for n in range(5)))
        assert api.stats()["oauth"]["tokens_issued"] == 1  # shared by concurrent calls
        clock.now += 69  # 100 s - 30 s margin not yet reached
        await sink.create({"email": "late@x"})
        assert api.stats()["oauth"]["tokens_issued"] == 1
        clock.now += 2
        await sink.create({"email": "later@x"})
        assert api.stats()["oauth"]["tokens_issued"] == 2
    assert api.stats()["requests"]["by_status"] == {"201": 7}


async def test_oauth2_refreshes_once_on_a_401(api: RefApi) -> None:
    api.writes.switch(auth="oauth2")
    sink, _ = _oauth_sink(api, scope="contacts:write")
    async with aclosing(sink):
        created = await sink.create({"email": "ada@x"})
        assert api.writes.auth.revoke() == 1  # the server ends it early
        assert await sink.get(created.id) == created
    assert api.stats()["oauth"]["tokens_issued"] == 2
    assert api.stats()["requests"]["by_status"] == {"201": 1, "401": 1, "200": 1}


def _token_server(
    token_status: int, api_status: int = 200, **token_body: Any
) -> tuple[Callable[[httpx.Request], httpx.Response], list[str]]:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/oauth/token":
            body = token_body or {"access_token": f"at-{len(calls)}", "expires_in": 3600}
            return httpx.Response(token_status, json=body)
        return httpx.Response(api_status, json={"id": "7", "rowId": "r1"})

    return handler, calls


def _mock_oauth(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> RestSink:
    settings = _settings("https://crm.example.com", **_oauth("https://crm.example.com"))
    return RestSink(settings, transport=httpx.MockTransport(handler), **kw)


async def test_oauth2_does_not_loop_on_a_second_401() -> None:
    handler, calls = _token_server(200, api_status=401)
    async with aclosing(_mock_oauth(handler)) as sink:
        with pytest.raises(SinkPermanentError) as caught:
            await sink.get("7")
    assert calls == ["/oauth/token", f"{PATH}/7", "/oauth/token", f"{PATH}/7"]
    assert caught.value.status_code == 401 and "OAuth2 token" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (401, ConfigurationError, "check client_id, the secret client_secret and scope"),
        (400, ConfigurationError, "invalid_client"),
        (404, ConfigurationError, "check token_url"),
        (503, SinkTransientError, "busy or down, will retry"),
        (200, ConfigurationError, "without a bearer access_token"),
    ],
)
async def test_a_failed_token_request_is_a_clear_error(
    status: int, error: type[Exception], message: str
) -> None:
    body = {"error": "invalid_client", "error_description": f"no such secret {TOKEN}"}
    handler, calls = _token_server(status, **({"token_type": "mac"} if status == 200 else body))
    async with aclosing(_mock_oauth(handler)) as sink:
        with pytest.raises(error, match=message) as caught:
            await sink.get("7")
    assert calls == ["/oauth/token"] and TOKEN not in str(caught.value)


async def test_the_token_request_is_audited_without_a_digest_of_its_secret() -> None:
    handler, _ = _token_server(200)
    auditor = ListAuditor()
    async with aclosing(_mock_oauth(handler, auditor=auditor)) as sink:
        await sink.get("7")
        assert TOKEN not in repr(sink.auth) and "at-1" not in repr(sink.auth)
    token_call, api_call = auditor.records
    assert (token_call.method, token_call.target, token_call.payload_digest) == (
        "POST", "/oauth/token", None
    )  # fmt: skip
    assert api_call.target == f"{PATH}/7"


# -- secrets come from `secrets:`, never from the file ---------------------------------------


def _target(settings: dict[str, Any], secrets: dict[str, SecretRef]) -> ResolvedTarget:
    return ResolvedTarget(integration="crm", provider="rest", enabled=True, settings=settings,
                          params={}, secrets=secrets)  # fmt: skip


OAUTH_SETTINGS = {"base_url": "https://crm.example.com", "collection_path": "/c",
                  "object_type": "c", "auth": "oauth2", "client_id": "cdcsync",
                  "token_url": "https://auth.example.com/oauth/token"}  # fmt: skip


async def test_client_secret_comes_from_secrets() -> None:
    target = _target(OAUTH_SETTINGS, {"client_secret": SecretRef(env="CRM_CLIENT_SECRET")})
    check_target(target, where="w")
    sink = build_target(target, where="w", environ={"CRM_CLIENT_SECRET": TOKEN})
    async with aclosing(sink):
        assert isinstance(sink, RestSink) and isinstance(sink.auth, OAuth2ClientCredentials)
        assert sink.auth.secrets() == [TOKEN]


def test_client_secret_written_in_the_file_is_refused() -> None:
    target = _target(OAUTH_SETTINGS | {"client_secret": TOKEN}, {})
    with pytest.raises(ConfigurationError) as caught:
        check_target(target, where="w")
    assert "w.settings.client_secret: a secret must not be written in the file" in str(caught.value)
    assert TOKEN not in str(caught.value)
