"""The direct sender builds what httpx's client builds and keeps its hooks, auth and cookies."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx
import pytest

from cdcsync.sinks.delivery import sender as sender_module
from cdcsync.sinks.delivery.sender import Sender

MERGE = "application/merge-patch+json"


def _client(base_url: str = "http://api.test:8080", **kw: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, headers={"Accept": "application/json"}, timeout=httpx.Timeout(3.0),
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _same(built: httpx.Request, expected: httpx.Request) -> None:
    assert built.method == expected.method
    assert str(built.url) == str(expected.url)
    assert sorted(built.headers.multi_items()) == sorted(expected.headers.multi_items())
    assert built.content == expected.content
    assert built.extensions == expected.extensions


@pytest.mark.parametrize(
    ("method", "url", "kw"),
    [
        ("PUT", "/api/v1/contacts/7", {"json": {"email": "é@x", "n": 1},
                                       "headers": {"If-Match": "r1"}}),
        ("POST", "/api/v1/contacts", {"json": {"email": "a@b", "tags": ["x", None]}}),
        ("POST", "/api/v1/contacts", {}),
        ("PATCH", "/api/v1/contacts/a%2Fb", {"json": {"n": 2},
                                            "headers": {"Content-Type": MERGE}}),
        ("GET", "/api/v1/contacts", {"params": {"filter[email]": "a+b@c", "limit": "2"}}),
        ("GET", "/api/v1/contacts/7", {"headers": {"Accept": "text/plain"}}),
        ("DELETE", "/api/v1/contacts/7", {}),
        ("GET", "http://api.test:8080/api/v1/contacts?cursor=abc", {}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("base_url", ["http://api.test:8080", "https://api.test/v2/"])
async def test_build_makes_the_request_the_client_builds(
    method: str, url: str, kw: dict[str, object], base_url: str
) -> None:
    async with _client(base_url) as client:
        sender = Sender(client, httpx.MockTransport(lambda r: httpx.Response(204)))
        json_body = kw.get("json")
        built = sender.build(
            method, url, params=kw.get("params"), json_body=json_body,  # type: ignore[arg-type]
            headers=kw.get("headers"),  # type: ignore[arg-type]
        )  # fmt: skip
        _same(built, client.build_request(method, url, **kw))  # type: ignore[arg-type]


async def test_a_nan_is_refused_as_httpx_refuses_it() -> None:
    async with _client() as client:
        sender = Sender(client, httpx.MockTransport(lambda r: httpx.Response(204)))
        with pytest.raises(ValueError, match="JSON compliant"):
            sender.build("POST", "/x", json_body={"n": float("nan")})


async def test_send_runs_the_hooks_and_reads_the_answer() -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "7"}, headers={"ETag": '"r2"'})

    async with _client(event_hooks={"request": [hook]}) as client:
        sender = Sender(client, httpx.MockTransport(handler))
        response = await sender.send(sender.build("PUT", "/c/7", json_body={"a": 1}))
    assert seen == ["PUT /c/7"]
    assert response.json() == {"id": "7"}
    assert response.headers["ETag"] == '"r2"'
    assert response.request.method == "PUT"
    assert response.is_closed


async def test_send_does_not_follow_a_redirect() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/elsewhere"})

    async with _client() as client:
        sender = Sender(client, httpx.MockTransport(handler))
        response = await sender.send(sender.build("GET", "/c/7"))
    assert response.status_code == 302
    assert response.request.url.path == "/c/7"


class _RetryOn401(httpx.Auth):
    """A flow of two requests: without a token first, then with one after a 401."""

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = "Bearer fresh"
            yield request


async def test_send_runs_the_auth_flow_with_a_hook_call_per_request() -> None:
    sent: list[str | None] = []
    hooked: list[str] = []

    async def hook(request: httpx.Request) -> None:
        hooked.append(request.method)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("Authorization"))
        ok = request.headers.get("Authorization") == "Bearer fresh"
        return httpx.Response(200 if ok else 401, json={})

    async with _client(auth=_RetryOn401(), event_hooks={"request": [hook]}) as client:
        sender = Sender(client, httpx.MockTransport(handler))
        response = await sender.send(sender.build("GET", "/c/7"))
    assert response.status_code == 200
    assert sent == [None, "Bearer fresh"]
    assert hooked == ["GET", "GET"]


async def test_cookies_an_answer_sets_go_with_the_next_request() -> None:
    cookies: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cookies.append(request.headers.get("Cookie"))
        return httpx.Response(200, json={}, headers={"Set-Cookie": "session=s1; Path=/"})

    async with _client() as client:
        sender = Sender(client, httpx.MockTransport(handler))
        await sender.send(sender.build("GET", "/a"))
        await sender.send(sender.build("GET", "/b"))
        assert client.cookies.get("session") == "s1"
    assert cookies == [None, "session=s1"]


async def test_a_closed_client_sends_nothing() -> None:
    calls: list[httpx.Request] = []
    client = _client()
    sender = Sender(client, httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(200)))
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await sender.send(sender.build("GET", "/a"))
    assert calls == []


async def test_paths_built_again_and_past_the_url_cache_keep_their_urls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sender_module, "URL_CACHE_SIZE", 2)
    async with _client("https://api.test/v2") as client:
        sender = Sender(client, httpx.MockTransport(lambda r: httpx.Response(204)))
        for path in ["/c/1", "/c/2", "/c/1", "/c/3", "/c/é", "/c/2", "/c/1"]:
            built = sender.build("PUT", path, json_body={"n": path})
            _same(built, client.build_request("PUT", path, json={"n": path}))
        with_query = sender.build("GET", "/c/1", params={"q": "1"})
        again = sender.build("GET", "/c/1")
    assert str(with_query.url) == "https://api.test/v2/c/1?q=1"
    assert str(again.url) == "https://api.test/v2/c/1"  # the query did not stick to the path
