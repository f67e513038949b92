"""Bench-only previews of a proposed ``sinks/rest.py`` change: a cheaper HTTP transport.

httpcore 1.0.x scans every pooled connection (and, for each idle one, the whole
pool again, plus a ``poll()`` of its socket) each time a request enters or leaves
the pool, so the CPU per request grows with ``max_connections``: on the bench
machine ~2 ms/request at 10 connections, ~9 ms at 50 (``python -m cProfile``:
``_assign_requests_to_connections``, ``is_idle``, ``is_socket_readable``). Two remedies, both
behind httpx's own ``transport=`` hook so RestSink keeps its API and error mapping:

- :class:`ShardedTransport`: several small httpcore pools, so every scan stays short;
- :class:`AiohttpTransport`: aiohttp's connector (already a dependency, for the web
  server) carries the requests.

``CDCSYNC_BENCH_TRANSPORT=sharded|aiohttp python -m cdcsync.bench.sharded worker ...``
runs the normal worker with every ``RestSink`` built on that transport;
``python -m cdcsync.bench --transport ...`` uses it and gives baseline (a) the same
transport, so the comparison stays fair.
"""

from __future__ import annotations

import functools
from typing import Any

import httpx

__all__ = ["SHARD_SIZE", "AiohttpTransport", "ShardedTransport", "install", "make_transport"]

#: Connections per shard: small enough that the pool's scans stay cheap.
SHARD_SIZE = 5


class ShardedTransport(httpx.AsyncBaseTransport):
    """``max_connections`` split into pools of ``SHARD_SIZE``; each request goes to the
    least busy pool."""

    def __init__(self, max_connections: int, shard_size: int = SHARD_SIZE) -> None:
        shards = max(1, -(-max_connections // shard_size))
        per = max(1, max_connections // shards)
        limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
        self._pools = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)]
        self._busy = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        i = min(range(len(self._pools)), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:
            return await self._pools[i].handle_async_request(request)
        finally:
            self._busy[i] -= 1

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent by one aiohttp session (its connector pools connections)."""

    def __init__(self, max_connections: int) -> None:
        self._limit = max_connections
        self._session: Any = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp

        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
        timeout = request.extensions.get("timeout", {})
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=list(request.headers.multi_items()),
                data=await request.aread() or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout.get("read")),
            ) as response:
                body = await response.read()
                headers = [(k, v) for k, v in response.raw_headers]
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        return httpx.Response(response.status, headers=headers, content=body, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def make_transport(kind: str, max_connections: int) -> httpx.AsyncBaseTransport | None:
    """The transport named ``kind`` ("httpx" means httpx's default: None)."""
    if kind == "sharded":
        return ShardedTransport(max_connections)
    if kind == "aiohttp":
        return AiohttpTransport(max_connections)
    return None


def install(kind: str) -> None:
    """Make every RestSink built from now on use the ``kind`` transport."""
    from cdcsync.sinks import rest

    original = rest.RestSink.__init__
    if getattr(original, "_sharded", False):
        return

    @functools.wraps(original)
    def init(self: Any, settings: Any, *, transport: Any = None, **kw: Any) -> None:
        if transport is None:
            transport = make_transport(kind, settings.max_connections)
        original(self, settings, transport=transport, **kw)

    init._sharded = True  # type: ignore[attr-defined]
    rest.RestSink.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    import os

    install(os.environ.get("CDCSYNC_BENCH_TRANSPORT", "sharded"))
    from cdcsync.streams.app import main

    main()
