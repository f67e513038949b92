"""The reference API over HTTP (aiohttp), and the ways to run it.

It behaves like the CRM and case-management APIs cdcsync talks to: bearer
auth, server-assigned ids, an opaque ``rowId`` version token, ``If-Match``,
cursor paging with equality filters, 429/5xx under load. Records live in
:mod:`.store`; misbehaviour on demand comes from :mod:`.faults` (the rules) and
:mod:`.misbehave` (what they do); bulk writes are :mod:`.bulk`, the error answers
:mod:`.answers`, the request counters :mod:`.stats`. The
``/_admin`` endpoints (stats, reset, faults, latency) and ``/ui`` pages are
for tests and the demo and need no token.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web
from pydantic import ValidationError

from .answers import (
    REFUSED,
    BadRequestError,
    error_response,
    json_object,
    refusal,
    validation_message,
)
from .bulk import apply_operation, operations_of
from .faults import FaultSpec, FaultTable
from .habits import Habits, created_answer, listing_answer, object_answer, updated_answer
from .misbehave import break_connection, injected_response
from .stats import Stats
from .store import PreconditionFailedError, Store
from .write_habits import WriteSide

__all__ = ["API_PREFIX", "RefApi", "RefApiThread", "run_in_thread", "serve"]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_T = TypeVar("_T")


class RefApi:
    """One reference API instance: its records, faults, counters and settings."""

    def __init__(
        self,
        *,
        token: str | None = None,
        latency_ms: int = 0,
        habits: Habits | Mapping[str, Any] | None = None,
    ) -> None:
        self.store = Store()
        #: How it shapes listings, objects and write answers (see :mod:`.habits`).
        self.habits = Habits().changed(habits or {}) if not isinstance(habits, Habits) else habits
        self.faults = FaultTable()
        self.latency_ms = latency_ms
        self.url = ""  # set once it listens
        self._token = token
        self._stats = Stats()
        #: Its auth and write habits, switchable (see :mod:`.write_habits`).
        self.writes = WriteSide(self.store, token)

    def __repr__(self) -> str:
        return f"RefApi(url={self.url!r}, auth={'on' if self._token else 'off'})"

    # -- control, also reachable over /_admin --------------------------------

    def reset(self) -> None:
        """Drop every record, pending fault and counter; keep token and latency."""
        self.store.clear()
        self.faults = FaultTable()
        self._stats = Stats()
        self.writes.reset()

    def inject_fault(
        self, spec: FaultSpec | Mapping[str, Any] | None = None, **kw: Any
    ) -> FaultSpec:
        """Arm a fault rule (see :class:`FaultSpec`); returns the validated rule."""
        if not isinstance(spec, FaultSpec):
            spec = FaultSpec.model_validate({**(spec or {}), **kw})
        self.faults.add(spec)
        return spec

    def stats(self) -> dict[str, Any]:
        """Request counts by method, path kind, operation and status; records per collection."""
        return {
            "requests": self._stats.to_json(),
            "records": self.store.counts(),
            "faults": {"fired": self.faults.fired, "pending": self.faults.pending()},
            "latency_ms": self.latency_ms,
            "oauth": self.writes.auth.stats(),
        }

    # -- the aiohttp application -------------------------------------------

    def make_app(self) -> web.Application:
        """A fresh aiohttp application serving this instance."""
        auth = self.writes.authenticate
        app = web.Application(middlewares=[self._count, self._misbehave, auth, self._errors])
        c = API_PREFIX + "/{collection:[A-Za-z0-9_.-]+}"
        i = c + "/{id}"
        app.router.add_get(c, self._list)
        app.router.add_post(c, self._create)
        app.router.add_post(c + "/_bulk", self._bulk)
        app.router.add_get(i, self._get)
        app.router.add_put(i, self._replace)
        app.router.add_patch(i, self._merge)
        app.router.add_delete(i, self._delete)
        app.router.add_get("/ui/{collection}/{id}", self._ui)
        app.router.add_get("/_admin/stats", self._admin_stats)
        app.router.add_post("/_admin/reset", self._admin_reset)
        for method in ("GET", "POST", "DELETE"):
            app.router.add_route(method, "/_admin/faults", self._admin_faults)
        for method in ("GET", "PUT"):
            app.router.add_route(method, "/_admin/settings", self._admin_settings)
        self.writes.add_routes(app)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        self._stats.record(request.method, request.rel_url.raw_path)  # ids may hold %2F
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self._stats.by_status[str(exc.status)] += 1
            raise
        self._stats.by_status[str(response.status)] += 1
        return response

    @web.middleware
    async def _misbehave(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        fault = self.faults.take(request.method, request.path)
        delay_ms = self.latency_ms + (fault.latency_ms if fault else 0)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if fault is not None and fault.connection == "lost_answer":
            await handler(request)  # the write lands; its answer never leaves
            return await break_connection(request, "reset")
        if fault is not None and fault.connection is not None:
            return await break_connection(request, fault.connection)
        if fault is None or fault.status is None:
            return await handler(request)
        logger.info("injecting %s on %s %s", fault.status, request.method, request.path)
        return injected_response(fault, fault.status)

    @web.middleware
    async def _errors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Turn the store's refusals and bad bodies into JSON error responses."""
        try:
            return await handler(request)
        except REFUSED as exc:
            status, code = refusal(exc)
            etag = {}
            if isinstance(exc, PreconditionFailedError):
                etag = {"ETag": f'"{exc.current_row_id}"'}
            return error_response(status, code, str(exc), **etag)
        except ValidationError as exc:
            return error_response(400, "bad_request", validation_message(exc))

    # -- /api/v1 handlers ----------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        return listing_answer(self.habits, self.store, request)

    async def _create(self, request: web.Request) -> web.Response:
        collection = request.match_info["collection"]
        record = self.store.create(collection, await json_object(request))
        location = f"{API_PREFIX}/{collection}/{record['id']}"
        return created_answer(self.habits, record, location)

    async def _get(self, request: web.Request) -> web.Response:
        info = request.match_info
        return object_answer(self.habits, self.store.get(info["collection"], info["id"]))

    async def _replace(self, request: web.Request) -> web.Response:
        info, body = request.match_info, await json_object(request)
        if_match = self.writes.if_match(request)
        if created := self.writes.put_create(info["collection"], info["id"], body, if_match):
            return created_answer(self.habits, created, request.path)
        record = self.store.replace(info["collection"], info["id"], body, if_match=if_match)
        return updated_answer(self.habits, record)

    async def _merge(self, request: web.Request) -> web.Response:
        record = await self.writes.merge(request, self.writes.if_match(request))
        return updated_answer(self.habits, record)

    async def _delete(self, request: web.Request) -> web.Response:
        info, if_match = request.match_info, self.writes.if_match(request)
        self.store.delete(info["collection"], info["id"], if_match=if_match)
        return web.Response(status=204)

    async def _bulk(self, request: web.Request) -> web.Response:
        """Several writes in one request, applied in order, each on its own (not atomic).

        ``{"operations": [{"op": "create"|"replace"|"merge"|"delete", "id": ..., "rowId":
        ..., "fields": {...}}]}`` answers ``{"results": [...]}``, one per operation in
        order: ``{"status": 201|200, "item": {...}}``, ``{"status": 204}`` or
        ``{"status": 400|404|412, "error": ..., "message": ...}``.
        """
        collection = request.match_info["collection"]
        operations = self.writes.bulk_operations(operations_of(await json_object(request)))
        results = [
            apply_operation(
                self.store,
                self.faults,
                self._stats.bulk_operations,
                collection=collection,
                collection_path=f"{API_PREFIX}/{collection}",
                operation=operation,
            )
            for operation in operations
        ]
        return web.json_response({"results": results})

    async def _ui(self, request: web.Request) -> web.Response:
        """A human-readable page per record: the target of the links in results."""
        collection, record_id = request.match_info["collection"], request.match_info["id"]
        record = self.store.get(collection, record_id)
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
            for k, v in record.items()
        )
        title = html.escape(f"{collection} {record_id}")
        page = f"<!doctype html><title>{title}</title><h1>{title}</h1><table>{rows}</table>"
        return web.Response(text=page, content_type="text/html")

    # -- /_admin handlers ----------------------------------------------------

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.Response(status=204)

    async def _admin_faults(self, request: web.Request) -> web.Response:
        """GET lists the pending rules, POST arms one, DELETE disarms all."""
        if request.method == "DELETE":
            self.faults.clear()
            return web.Response(status=204)
        if request.method == "GET":
            return web.json_response({"pending": self.faults.pending(), "fired": self.faults.fired})
        rule = self.inject_fault(await json_object(request))
        return web.json_response({"armed": rule.model_dump(exclude_none=True)}, status=201)

    async def _admin_settings(self, request: web.Request) -> web.Response:
        """GET shows, PUT changes the latency added to every ``/api`` request and the habits
        (a partial ``{"habits": {...}}``, see :mod:`.habits`; shown when not the defaults)."""
        if request.method == "PUT":
            body = await json_object(request)
            changed = self.habits.changed(body.pop("habits", None) or {})
            latency = body.get("latency_ms", self.latency_ms)
            if set(body) - {"latency_ms"} or type(latency) is not int or latency < 0:
                raise BadRequestError(
                    'expected {"latency_ms": <non-negative int>, "habits": {...}}'
                )
            self.latency_ms, self.habits = latency, changed
        shown = {"habits": self.habits.shown()} if self.habits.shown() else {}
        return web.json_response({"latency_ms": self.latency_ms, **shown})


@contextlib.asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    *,
    latency_ms: int = 0,
    habits: Habits | Mapping[str, Any] | None = None,
) -> AsyncIterator[RefApi]:
    """Run a reference API on the current loop for the duration of the block.

    ``port=0`` picks a free port; the instance's ``url`` says which.
    """
    api = RefApi(token=token, latency_ms=latency_ms, habits=habits)
    runner = web.AppRunner(
        api.make_app(), access_log=None, shutdown_timeout=0.5, handler_cancellation=True
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        api.url = f"http://{url_host}:{bound_port}"
        logger.info("reference API listening on %s (auth %s)", api.url, "on" if token else "off")
        yield api
    finally:
        await runner.cleanup()


class RefApiThread:
    """A reference API served by its own event loop in a daemon thread (sync tests, demo)."""

    def __init__(self, host: str, port: int, token: str | None, latency_ms: int) -> None:
        self._args = (host, port, token, latency_ms)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.api: RefApi | None = None
        self._thread = threading.Thread(target=self._run, name="refapi", daemon=True)

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8900``."""
        assert self.api is not None, "not started"
        return self.api.url

    def start(self, timeout: float = 10.0) -> RefApiThread:
        """Start serving; returns once the port is bound (or raises why not)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the reference API did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError("the reference API failed to start") from self._error
        return self

    def call(self, fn: Callable[[RefApi], _T], timeout: float = 10.0) -> _T:
        """Run ``fn(api)`` on the server's loop, thread-safely: ``call(lambda a: a.reset())``."""
        assert self._loop is not None and self.api is not None, "not started"
        api = self.api

        async def _call() -> _T:
            return fn(api)

        future: Future[_T] = asyncio.run_coroutine_threadsafe(_call(), self._loop)
        return future.result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread; safe to call twice."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> RefApiThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        host, port, token, latency_ms = self._args
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with serve(host, port, token, latency_ms=latency_ms) as api:
                self.api = api
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # reported to start() by the calling thread
            self._error = exc
        finally:
            self._ready.set()


def run_in_thread(
    host: str = "127.0.0.1", port: int = 0, token: str | None = None, *, latency_ms: int = 0
) -> RefApiThread:
    """Start a reference API in a background thread; ``.stop()`` it or use it in ``with``."""
    return RefApiThread(host, port, token, latency_ms).start()
