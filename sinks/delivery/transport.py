"""The transport under the REST provider's httpx client, and what its failures mean.

httpx keeps the API (requests, auth, event hooks, ``MockTransport`` in tests);
aiohttp's connector carries the bytes (:pypi:`httpx-aiohttp`). httpcore's pool
re-scans every pooled connection on each request, which was two thirds of a busy
worker's CPU (bench/); aiohttp's connector does not, and halves the CPU per call.

httpx-aiohttp maps aiohttp's exceptions onto httpx's, coarsely (a server that
closes the connection becomes a ``ConnectTimeout``, a malformed response is not
mapped at all). :func:`classify` reads the original exception instead, so every
failure gets a true description and the right retry decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["TRANSPORT_ERRORS", "TransportFailure", "classify", "make_transport"]

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
    return AiohttpTransport(limits=limits)


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
