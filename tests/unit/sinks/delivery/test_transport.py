"""What a failed request means: classify() reads aiohttp's exception under httpx's."""

from __future__ import annotations

import aiohttp
import httpx
import pytest

from cdcsync.sinks.delivery.transport import classify


def _mapped(httpx_class: type[httpx.HTTPError], cause: BaseException) -> httpx.HTTPError:
    """What httpx-aiohttp raises: an httpx exception ``from`` aiohttp's."""
    try:
        raise httpx_class("mapped") from cause
    except httpx.HTTPError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "transient", "start"),
    [
        # httpx-aiohttp calls a dropped connection a ConnectTimeout: it is not a timeout.
        (_mapped(httpx.ConnectTimeout, aiohttp.ServerDisconnectedError()), True,
         "failed in transit (ServerDisconnectedError"),
        (_mapped(httpx.ReadTimeout, aiohttp.SocketTimeoutError("read")), True,
         "timed out after 2s (SocketTimeoutError)"),
        (_mapped(httpx.ConnectTimeout, aiohttp.ConnectionTimeoutError("connect")), True,
         "timed out after 2s (ConnectionTimeoutError)"),
        (_mapped(httpx.ReadError, aiohttp.ClientPayloadError("cut")), True,
         "failed in transit (ClientPayloadError: cut)"),
        (_mapped(httpx.UnsupportedProtocol, aiohttp.NonHttpUrlClientError("ftp://x")), False,
         "could not be sent (NonHttpUrlClientError"),
        # unmapped by httpx-aiohttp, so raised as is
        (aiohttp.ClientOSError(104, "Connection reset by peer"), True,
         "failed in transit (ClientOSError"),
        (aiohttp.InvalidURL("http://[::1"), False, "could not be sent (InvalidURL"),
        # httpx's own transports (MockTransport, proxies)
        (httpx.PoolTimeout("pool"), True, "timed out after 2s (PoolTimeout)"),
        (httpx.RemoteProtocolError("eof"), True, "failed in transit (RemoteProtocolError: eof)"),
        (httpx.UnsupportedProtocol("ftp"), False, "could not be sent (UnsupportedProtocol: ftp)"),
    ],
)  # fmt: skip
def test_classify(exc: BaseException, transient: bool, start: str) -> None:
    failure = classify(exc, 2.0)
    assert failure.transient is transient
    assert failure.what.startswith(start), failure.what
    assert failure.what.endswith("will retry" if transient else "check base_url")
