"""The transport under the REST provider's httpx client, and what its failures mean.

httpx keeps the API (requests, auth, event hooks, ``MockTransport`` in tests);
aiohttp's connector carries the bytes (:pypi:`httpx-aiohttp`). httpcore's pool
re-scans every pooled connection on each request, which was two thirds of a busy
worker's CPU (bench/); aiohttp's connector does not, and halves the CPU per call.

httpx-aiohttp maps aiohttp's exceptions onto httpx's, coarsely (a server that
closes the connection becomes a ``ConnectTimeout``, a malformed response is not
mapped at all). :func:`classify` reads the original exception instead, so every
failure gets a true description and the right retry decision.

A request waits for a free connection before its timeout starts: the timeout is
the API's time, not the wait in our own queue. Otherwise a backlog (a drain, a
replay) queues more requests on the pool than the API answers within
``timeout_s``, and they fail, park and retry as if the API were down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

__all__ = [
    "TRANSPORT_ERRORS",
    "TransportFailure",
    "WholeAnswerTransport",
    "classify",
    "make_transport",
]

#: What a request through :func:`make_transport` can raise besides an HTTP status.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, aiohttp.ClientError)

#: Gone wrong on the way: the same request may well succeed later.
_IN_TRANSIT: tuple[type[BaseException], ...] = (
    httpx.NetworkError,  # connect, read, write, close
    httpx.RemoteProtocolError,
    httpx.ProxyError,
    httpx.DecodingError,
    aiohttp.ClientConnectionError,  # refused, reset, closed before answering
    aiohttp.ClientPayloadError,  # body cut short
    aiohttp.ClientResponseError,  # an answer that is not HTTP
)
_TIMEOUTS: tuple[type[BaseException], ...] = (httpx.TimeoutException, TimeoutError)


@dataclass(frozen=True)
class TransportFailure:
    """Why a request got no HTTP answer, and whether sending it again may help."""

    transient: bool
    what: str


def make_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """aiohttp's connection pool behind httpx, keeping up to ``max_connections`` open."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return WholeAnswerTransport(limits=limits, max_connections=max_connections)


class WholeAnswerTransport(AiohttpTransport):
    """httpx-aiohttp's transport, reading each answer whole before returning it.

    The provider reads every answer whole anyway; streaming it to httpx chunk by
    chunk through two wrappers cost more than the read (bench/, ``--profile``).
    The request goes out exactly as httpx-aiohttp sends it, and its errors are
    mapped the same way. At most ``max_connections`` requests are on their way at
    once; the others wait, untimed and in order, for one to end.
    """

    def __init__(self, *, limits: httpx.Limits, max_connections: int) -> None:
        super().__init__(limits=limits)
        self._free = asyncio.Semaphore(max_connections)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._free:  # the pool has a connection for us: the timeout is the API's
            return await self._handle(request)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        with map_aiohttp_exceptions():
            try:
                data: bytes | httpx.AsyncByteStream | None = request.content or None
            except httpx.RequestNotRead:
                data = request.stream  # type: ignore[assignment]
                request.headers.pop("transfer-encoding", None)  # aiohttp chunks it
            async with self.client.request(
                method=request.method,
                url=str(request.url),
                headers=request.headers,
                data=data,
                allow_redirects=False,
                auto_decompress=False,  # httpx decodes, as for any transport
                compress=False,
                timeout=_client_timeout(timeout),
                server_hostname=request.extensions.get("sni_hostname"),
                proxy=str(self.proxy.url) if self.proxy else None,
                proxy_auth=aiohttp.BasicAuth(*self.proxy.auth)
                if self.proxy and self.proxy.auth
                else None,
                proxy_headers=self.proxy.headers if self.proxy else None,
            ) as answer:
                body = await answer.read()
        extensions = {"http_version": b"HTTP/1.1"}
        if answer.reason:
            extensions["reason_phrase"] = answer.reason.encode()
        return httpx.Response(
            status_code=answer.status,
            headers=answer.raw_headers,
            content=body,
            request=request,
            extensions=extensions,
        )


_Timeouts = tuple[float | None, float | None, float | None]
_TIMEOUTS_BY_SETTING: dict[_Timeouts, aiohttp.ClientTimeout] = {}


def _client_timeout(timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's timeouts as aiohttp's (as httpx-aiohttp maps them), built once per setting."""
    key: _Timeouts = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
    if (found := _TIMEOUTS_BY_SETTING.get(key)) is None:
        found = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1], connect=key[2])
        _TIMEOUTS_BY_SETTING[key] = found
    return found


def classify(exc: BaseException, timeout_s: float) -> TransportFailure:
    """Describe a failed request from the exception that really happened (aiohttp's, if any)."""
    cause = exc
    if isinstance(exc, httpx.HTTPError) and isinstance(
        exc.__cause__, aiohttp.ClientError | TimeoutError
    ):
        cause = exc.__cause__
    name = type(cause).__name__
    if isinstance(cause, _TIMEOUTS):  # before _IN_TRANSIT: aiohttp's timeouts are both
        return TransportFailure(True, f"timed out after {timeout_s:g}s ({name}); will retry")
    if isinstance(cause, _IN_TRANSIT):
        return TransportFailure(True, f"failed in transit ({name}: {cause}); will retry")
    return TransportFailure(False, f"could not be sent ({name}: {cause}); check base_url")
