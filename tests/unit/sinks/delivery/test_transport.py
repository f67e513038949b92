"""The REST transport: answers read whole, and what a failed request means (classify() reads
aiohttp's exception under httpx's)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web

from cdcsync.sinks.delivery.transport import classify, make_transport


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


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A local aiohttp server: /gzip answers a gzip-encoded JSON body, /echo the request,
    /slow after 0.2 s."""

    async def gzipped(request: web.Request) -> web.Response:
        body = gzip.compress(json.dumps({"id": "7", "name": "é"}).encode())
        return web.Response(body=body, headers={"Content-Encoding": "gzip",
                                                "Content-Type": "application/json"})  # fmt: skip

    async def echo(request: web.Request) -> web.Response:
        seen = {"method": request.method, "body": (await request.read()).decode(),
                "if_match": request.headers.get("If-Match")}  # fmt: skip
        return web.json_response(seen, status=201, reason="Made")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/gzip", gzipped)
    app.router.add_route("*", "/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_transport_returns_the_answer_read_and_decoded(server: str) -> None:
    transport = make_transport(2)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=server) as client:
            answer = await transport.handle_async_request(client.build_request("GET", "/gzip"))
            assert answer.is_stream_consumed  # read whole: nothing left to stream
            assert answer.json() == {"id": "7", "name": "é"}
            request = client.build_request("PUT", "/echo", json={"a": 1}, headers={"If-Match": "r"})
            answer = await transport.handle_async_request(request)
            assert (answer.status_code, answer.reason_phrase) == (201, "Made")
            assert answer.json() == {"method": "PUT", "body": '{"a":1}', "if_match": "r"}
            assert answer.request is request
    finally:
        await transport.aclose()


async def test_the_transport_maps_a_refused_connection_as_httpx_aiohttp_does() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    transport = make_transport(2)
    try:
        request = httpx.Request("GET", f"http://127.0.0.1:{port}/x", extensions={"timeout": {}})
        # httpx-aiohttp's coarse mapping (a ConnectTimeout), aiohttp's error as its cause
        with pytest.raises(httpx.ConnectTimeout) as caught:
            await transport.handle_async_request(request)
    finally:
        await transport.aclose()
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    failure = classify(caught.value, 2.0)
    assert failure.transient and failure.what.startswith("failed in transit (ClientConnector")


async def test_a_request_waiting_for_a_connection_is_not_timed_out(server: str) -> None:
    # 8 requests on 2 connections, 0.2 s each: the last waits 0.6 s for a connection, past
    # the 0.3 s timeout, and still succeeds; the timeout is the API's time, not our queue's.
    transport = make_transport(2)
    timeout = httpx.Timeout(0.3)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=server, timeout=timeout) as c:
            answers = await asyncio.gather(*(c.get("/slow") for _ in range(8)))
    finally:
        await transport.aclose()
    assert [a.status_code for a in answers] == [200] * 8


async def test_a_slow_answer_still_times_out(server: str) -> None:
    transport = make_transport(2)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=server, timeout=0.05) as c:
            with pytest.raises(httpx.TimeoutException) as caught:
                await c.get("/slow")
    finally:
        await transport.aclose()
    assert classify(caught.value, 0.05).what.startswith("timed out after 0.05s")
