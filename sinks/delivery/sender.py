"""Sending a client's requests straight to its transport, without httpx's per-request layers.

``httpx.AsyncClient`` stays the REST provider's client: it holds the base URL,
default headers, timeout, auth, cookies and transport. But its ``build_request``
re-merges the URL, headers, cookies and query on every call, and its ``send``
runs the redirect loop, streams the answer through two wrappers and parses every
answer's cookies through :mod:`http.cookiejar`: together about a third of a
busy worker's HTTP CPU (bench/, ``--profile``). :class:`Sender` builds the same
request from parts prepared once and hands it to the transport, with the same
auth flow, request event hooks, timeout and cookies; redirects are not followed, as
the client's default (``follow_redirects=False``) already says.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

__all__ = ["Sender"]

#: Paths whose parsed URL is kept; past that the cache starts again.
URL_CACHE_SIZE = 4096

#: httpx's own logger: each request's line goes there, as httpx writes it.
_httpx_log = logging.getLogger("httpx")

#: An httpx request event hook: called with each request as it leaves (auth's token
#: requests included).
RequestHook = Callable[[httpx.Request], Awaitable[None]]


class Sender:
    """Builds and sends the requests of one ``httpx.AsyncClient`` over ``transport``."""

    def __init__(self, client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport) -> None:
        self.client = client
        #: Where requests go: the client's transport (a test may swap in a ``MockTransport``).
        self.transport = transport
        self._hooks: Sequence[RequestHook] = client.event_hooks["request"]
        base = client.base_url
        #: The base URL without its trailing slash: a path is appended to it.
        self._base = str(base).rstrip("/")
        headers = httpx.Headers(client.headers)
        headers["Host"] = base.netloc.decode("ascii")  # what httpx.Request would set
        self._headers = headers
        self._extensions = {"timeout": client.timeout.as_dict()}
        #: Parsed URLs by path: a worker writes the same objects' paths again and again.
        self._urls: dict[str, httpx.URL] = {}

    def build(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        """What ``client.build_request(method, url, params=, json=, headers=)`` builds.

        ``url``: a path under the base URL, or an absolute URL (a listing's next link).
        """
        if url.startswith(("http://", "https://")):
            return self.client.build_request(
                method, url, params=params, json=json_body, headers=headers
            )
        target = self._urls.get(url)
        if target is None:
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            target = self._urls[url] = httpx.URL(self._base + url)
        if params:
            target = target.copy_merge_params(params)
        merged = httpx.Headers(self._headers)
        content = b""
        if json_body is not None:
            # httpx's own encoding of json=, byte for byte
            text = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            content = text.encode("utf-8")
            merged["Content-Type"] = "application/json"
        if headers:
            merged.update(headers)  # a caller's Content-Type (merge-patch) wins, as in httpx
        if content or method in ("POST", "PUT", "PATCH"):
            merged["Content-Length"] = str(len(content))
        # stream=: the headers are complete, so httpx need not rebuild them (content= would)
        request = httpx.Request(
            method, target, headers=merged, stream=httpx.ByteStream(content),
            extensions=dict(self._extensions),
        )  # fmt: skip
        request.read()  # the body as request.content, as content= leaves it
        if self.client.cookies:
            self.client.cookies.set_cookie_header(request)
        return request

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the client's auth flow; the answer is read whole."""
        if self.client.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        auth = self.client.auth
        if auth is None:
            return await self._send_one(request)
        flow = auth.async_auth_flow(request)
        try:
            request = await flow.__anext__()
            while True:
                response = await self._send_one(request)
                try:
                    request = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    async def _send_one(self, request: httpx.Request) -> httpx.Response:
        for hook in self._hooks:
            await hook(request)
        response = await self.transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        if "set-cookie" in response.headers:
            self.client.cookies.extract_cookies(response)
        if _httpx_log.isEnabledFor(logging.INFO):
            _httpx_log.info(
                'HTTP Request: %s %s "%s %d %s"', request.method, request.url,
                response.http_version, response.status_code, response.reason_phrase,
            )  # fmt: skip
        return response
