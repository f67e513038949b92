"""The reference API over HTTP (aiohttp), and the ways to run it.

It behaves like the CRM and case-management APIs cdcsync talks to: bearer
auth, server-assigned ids, an opaque ``rowId`` version token, ``If-Match``,
cursor paging with equality filters, 429/5xx under load. Records live in
:mod:`.store`; misbehaviour on demand comes from :mod:`.faults`. The
``/_admin`` endpoints (stats, reset, faults, latency) and ``/ui`` pages are
for tests and the demo and need no token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import ValidationError

from .faults import ConnectionFault, FaultSpec, FaultTable
from .store import InvalidCursorError, NotFoundError, PreconditionFailedError, Store

__all__ = ["API_PREFIX", "RefApi", "RefApiThread", "run_in_thread", "serve"]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Most operations one ``POST /api/v1/{collection}/_bulk`` takes.
MAX_BULK = 1000
_API_PATH = re.compile(r"^/api/v1/(?P<collection>[^/]+)(?:/(?P<id>[^/]+))?/?$")
_OPERATIONS = {  # (path kind, method) -> operation, for the stats
    ("collection", "GET"): "list", ("collection", "POST"): "create",
    ("item", "GET"): "get", ("item", "PUT"): "replace", ("item", "PATCH"): "merge",
    ("item", "DELETE"): "delete", ("bulk", "POST"): "bulk",
}  # fmt: skip
#: The request each bulk operation stands for, for the faults armed on it.
_BULK_METHODS = {"create": "POST", "replace": "PUT", "merge": "PATCH", "delete": "DELETE"}
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_T = TypeVar("_T")


@dataclass(slots=True)
class _Stats:
    by_method: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    #: Operations carried by bulk requests, by kind (create, replace, merge, delete).
    bulk_operations: Counter[str] = field(default_factory=Counter)

    def record(self, method: str, path: str) -> None:
        match = _API_PATH.match(path)
        kind = ("item" if match["id"] else "collection") if match else "other"
        if match and match["id"] == "_bulk" and method == "POST":
            kind = "bulk"
        self.by_method[method] += 1
        self.by_kind[kind] += 1
        self.by_operation[_OPERATIONS.get((kind, method), "other")] += 1


class RefApi:
    """One reference API instance: its records, faults, counters and settings."""

    def __init__(self, *, token: str | None = None, latency_ms: int = 0) -> None:
        self.store = Store()
        self.faults = FaultTable()
        self.latency_ms = latency_ms
        self.url = ""  # set once it listens
        self._token = token
        self._stats = _Stats()

    def __repr__(self) -> str:
        return f"RefApi(url={self.url!r}, auth={'on' if self._token else 'off'})"

    # -- control, also reachable over /_admin --------------------------------

    def reset(self) -> None:
        """Drop every record, pending fault and counter; keep token and latency."""
        self.store.clear()
        self.faults = FaultTable()
        self._stats = _Stats()

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
        s = self._stats
        return {
            "requests": {
                "total": sum(s.by_method.values()),
                "by_method": dict(s.by_method),
                "by_kind": dict(s.by_kind),
                "by_operation": dict(s.by_operation),
                "by_status": dict(s.by_status),
                "bulk_operations": dict(s.bulk_operations),
            },
            "records": self.store.counts(),
            "faults": {"fired": self.faults.fired, "pending": self.faults.pending()},
            "latency_ms": self.latency_ms,
        }

    # -- the aiohttp application -------------------------------------------

    def make_app(self) -> web.Application:
        """A fresh aiohttp application serving this instance."""
        app = web.Application(middlewares=[self._count, self._misbehave, self._auth, self._errors])
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
        if fault is not None and fault.connection is not None:
            return await _break_connection(request, fault.connection)
        if fault is None or fault.status is None:
            return await handler(request)
        logger.info("injecting %s on %s %s", fault.status, request.method, request.path)
        retry_after = fault.retry_after_header()
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = fault.body
        if body is None:
            body = json.dumps({"error": "injected_fault", "message": f"HTTP {fault.status}"})
        return web.Response(
            status=fault.status, text=body, content_type="application/json", headers=headers
        )

    @web.middleware
    async def _auth(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if self._token is None or not request.path.startswith("/api/"):
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, self._token):
            challenge = {"WWW-Authenticate": 'Bearer realm="refapi"'}
            return _error(401, "unauthorized", "a valid bearer token is required", **challenge)
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Turn the store's refusals and bad bodies into JSON error responses."""
        try:
            return await handler(request)
        except _REFUSED as exc:
            status, code = _refusal(exc)
            etag = {}
            if isinstance(exc, PreconditionFailedError):
                etag = {"ETag": f'"{exc.current_row_id}"'}
            return _error(status, code, str(exc), **etag)
        except ValidationError as exc:
            return _error(400, "bad_request", _validation_message(exc))

    # -- /api/v1 handlers ----------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise _BadRequestError("limit must be an integer") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise _BadRequestError(f"limit must be between 1 and {MAX_LIMIT}")
        filters = {k: v for k, v in query.items() if k not in ("limit", "cursor")}
        collection, cursor = request.match_info["collection"], query.get("cursor") or None
        page = self.store.page(collection, limit=limit, cursor=cursor, filters=filters)
        return web.json_response({"items": page.items, "next": page.next})

    async def _create(self, request: web.Request) -> web.Response:
        collection = request.match_info["collection"]
        record = self.store.create(collection, await _json_object(request))
        location = f"{API_PREFIX}/{collection}/{record['id']}"
        return _record_response(record, status=201, Location=location)

    async def _get(self, request: web.Request) -> web.Response:
        info = request.match_info
        return _record_response(self.store.get(info["collection"], info["id"]))

    async def _replace(self, request: web.Request) -> web.Response:
        info, body = request.match_info, await _json_object(request)
        if_match = request.headers.get("If-Match")
        record = self.store.replace(info["collection"], info["id"], body, if_match=if_match)
        return _record_response(record)

    async def _merge(self, request: web.Request) -> web.Response:
        info, body = request.match_info, await _json_object(request)
        if_match = request.headers.get("If-Match")
        record = self.store.merge(info["collection"], info["id"], body, if_match=if_match)
        return _record_response(record)

    async def _delete(self, request: web.Request) -> web.Response:
        info, if_match = request.match_info, request.headers.get("If-Match")
        self.store.delete(info["collection"], info["id"], if_match=if_match)
        return web.Response(status=204)

    async def _bulk(self, request: web.Request) -> web.Response:
        """Several writes in one request, applied in order, each on its own (not atomic).

        ``{"operations": [{"op": "create"|"replace"|"merge"|"delete", "id": ..., "rowId":
        ..., "fields": {...}}]}`` answers ``{"results": [...]}``, one per operation in
        order: ``{"status": 201|200, "item": {...}}``, ``{"status": 204}`` or
        ``{"status": 400|404|412, "error": ..., "message": ...}``.
        """
        collection, body = request.match_info["collection"], await _json_object(request)
        operations = body.get("operations")
        if set(body) != {"operations"} or not isinstance(operations, list):
            raise _BadRequestError('expected {"operations": [...]}')
        if not 1 <= len(operations) <= MAX_BULK:
            raise _BadRequestError(f"a bulk request takes 1 to {MAX_BULK} operations")
        return web.json_response({"results": [self._bulk_one(collection, o) for o in operations]})

    def _bulk_one(self, collection: str, operation: Any) -> dict[str, Any]:
        try:
            op, record_id, if_match, fields = _bulk_operation(operation)
            self._stats.bulk_operations[op] += 1
            # A fault armed for this operation's own request fails it here too.
            path = f"{API_PREFIX}/{collection}" + (f"/{record_id}" if record_id else "")
            fault = self.faults.take(_BULK_METHODS[op], path, status_only=True)
            if fault is not None and fault.status is not None:
                logger.info("injecting %s on bulk %s %s", fault.status, op, path)
                return {"status": fault.status, "error": "injected_fault",
                        "message": f"HTTP {fault.status}"}  # fmt: skip
            if op == "create":
                return {"status": 201, "item": self.store.create(collection, fields)}
            if op == "delete":
                self.store.delete(collection, record_id, if_match=if_match)
                return {"status": 204}
            write = self.store.replace if op == "replace" else self.store.merge
            return {"status": 200, "item": write(collection, record_id, fields, if_match=if_match)}
        except _REFUSED as exc:
            status, code = _refusal(exc)
            return {"status": status, "error": code, "message": str(exc)}

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
        rule = self.inject_fault(await _json_object(request))
        return web.json_response({"armed": rule.model_dump(exclude_none=True)}, status=201)

    async def _admin_settings(self, request: web.Request) -> web.Response:
        """GET shows, PUT changes the latency added to every ``/api`` request."""
        if request.method == "PUT":
            body = await _json_object(request)
            latency = body.get("latency_ms", self.latency_ms)
            if set(body) - {"latency_ms"} or type(latency) is not int or latency < 0:
                raise _BadRequestError('expected {"latency_ms": <non-negative int>}')
            self.latency_ms = latency
        return web.json_response({"latency_ms": self.latency_ms})


class _BadRequestError(Exception):
    """The request itself is malformed (400)."""


#: What the store or a handler refuses, and the status and error code answering it.
_REFUSALS: dict[type[Exception], tuple[int, str]] = {
    NotFoundError: (404, "not_found"),
    PreconditionFailedError: (412, "precondition_failed"),
    InvalidCursorError: (400, "bad_request"),
    _BadRequestError: (400, "bad_request"),
}
_REFUSED = tuple(_REFUSALS)


def _refusal(exc: Exception) -> tuple[int, str]:
    """The status and error code for a refusal (one of ``_REFUSED``), for a request or a
    bulk operation alike."""
    return next(answer for kind, answer in _REFUSALS.items() if isinstance(exc, kind))


async def _break_connection(request: web.Request, kind: ConnectionFault) -> web.StreamResponse:
    """Break the exchange the way a failing network or proxy does, instead of answering."""
    logger.info("injecting a %s connection on %s %s", kind, request.method, request.path)
    transport = request.transport
    if transport is None:  # the client has gone already
        raise asyncio.CancelledError
    if kind == "truncate":
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 4096
        await response.prepare(request)
        await response.write(b'{"id": "cut-short", "items": [')
    elif kind == "garbage":
        transport.write(b"this is not HTTP\r\n\r\n")
    transport.close()
    raise asyncio.CancelledError  # aiohttp drops the request quietly, writing nothing more


def _bulk_operation(operation: Any) -> tuple[str, str, str | None, dict[str, Any]]:
    """(op, id, rowId, fields) of one bulk operation, checked."""
    if not isinstance(operation, dict):
        raise _BadRequestError("an operation must be a JSON object")
    op, record_id = operation.get("op"), operation.get("id")
    if op not in ("create", "replace", "merge", "delete"):
        raise _BadRequestError("op must be one of create, replace, merge, delete")
    if op != "create" and (not isinstance(record_id, str) or not record_id):
        raise _BadRequestError(f"a {op} needs the record's id")
    fields = operation.get("fields", {})
    if not isinstance(fields, dict):
        raise _BadRequestError("fields must be a JSON object")
    if_match = operation.get("rowId")
    return op, record_id or "", None if if_match is None else str(if_match), fields


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


async def _json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; anything else is a 400."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _BadRequestError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequestError("the body must be a JSON object")
    return body


def _record_response(
    record: Mapping[str, Any], *, status: int = 200, **headers: str
) -> web.Response:
    etag = {"ETag": f'"{record["rowId"]}"'}
    return web.json_response(record, status=status, headers={**etag, **headers})


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())


@contextlib.asynccontextmanager
async def serve(
    host: str = "127.0.0.1", port: int = 0, token: str | None = None, *, latency_ms: int = 0
) -> AsyncIterator[RefApi]:
    """Run a reference API on the current loop for the duration of the block.

    ``port=0`` picks a free port; the instance's ``url`` says which.
    """
    api = RefApi(token=token, latency_ms=latency_ms)
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
