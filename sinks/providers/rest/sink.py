"""The REST sink: the Sink contract as HTTP calls on one collection, rate-limited and audited."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from cdcsync.errors import SinkError
from cdcsync.sinks.base import BulkOutcome, BulkWrite, ExternalRecord, Sink, count_call
from cdcsync.sinks.delivery.audit import Auditor, audit_record
from cdcsync.sinks.delivery.ratelimit import (
    DEFAULT_429_PAUSE_S,
    RateLimiter,
    parse_retry_after,
    resolve_workers,
)
from cdcsync.sinks.delivery.transport import TRANSPORT_ERRORS, classify, make_transport
from cdcsync.sinks.providers.rest.failures import Failures, is_transient_status
from cdcsync.sinks.providers.rest.paging import CollectionReader
from cdcsync.sinks.providers.rest.settings import HeaderAuth, RestSettings, read_token

__all__ = ["RestSink"]

logger = logging.getLogger(__name__)
# httpx logs every request at INFO: ~5% of a busy worker's CPU (bench/). Each call is
# counted in results and recorded on the audit topic instead.
logging.getLogger("httpx").setLevel(logging.WARNING)


class RestSink(Sink):
    """One collection of a REST API, over one shared ``httpx.AsyncClient`` (aiohttp underneath)."""

    def __init__(
        self,
        settings: RestSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
        auditor: Auditor | None = None,
        integration: str | None = None,
    ) -> None:
        self.settings = settings
        self.object_type = settings.object_type
        self.bulk_max = settings.bulk_max if settings.bulk_path else 0
        environ = os.environ if environ is None else environ
        token = read_token(settings, environ)
        self._failures = Failures(settings, token)
        self._reader = CollectionReader(settings, self._failures)
        self._auditor = auditor
        self._integration = integration
        self.limiter = limiter or RateLimiter.for_worker(
            rate_limit_rps=settings.rate_limit_rps,
            max_concurrency=settings.max_concurrency,
            workers=resolve_workers(settings.workers, environ),
        )
        auth = None
        if token is not None:
            auth = HeaderAuth(settings.auth_header, settings.auth_scheme, token)
        self._client = httpx.AsyncClient(
            base_url=settings.base_url,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=httpx.Timeout(settings.timeout_s),
            transport=transport or make_transport(settings.max_connections),
            event_hooks={"request": [_count_request, self._audit]},
        )

    def __repr__(self) -> str:
        s = self.settings
        return f"RestSink({s.object_type!r}, {s.base_url}{s.collection_path})"

    # -- the Sink contract ---------------------------------------------------

    async def get(self, external_id: str) -> ExternalRecord | None:
        response = await self._send("GET", self._item_path("GET", external_id), missing_ok=True)
        return None if response.status_code == 404 else self._reader.record(response)

    async def find(self, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        return await self._reader.find(self._get, natural_key)

    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        response = await self._send("POST", self.settings.collection_path, body=payload)
        return self._reader.record(response)

    async def update(
        self, external_id: str, payload: Mapping[str, Any], *, expected_row_id: str | None = None
    ) -> ExternalRecord:
        method = self.settings.update_method
        path = self._item_path(method, external_id)
        headers = _if_match(expected_row_id)
        return self._reader.record(await self._send(method, path, body=payload, headers=headers))

    async def patch(self, external_id: str, fields: Mapping[str, Any]) -> ExternalRecord:
        if self.settings.update_method != "PATCH":
            return await super().patch(external_id, fields)
        path = self._item_path("PATCH", external_id)
        return self._reader.record(await self._send("PATCH", path, body=fields))

    async def delete(self, external_id: str, *, expected_row_id: str | None = None) -> bool:
        path = self._item_path("DELETE", external_id)
        headers = _if_match(expected_row_id)
        response = await self._send("DELETE", path, missing_ok=True, headers=headers)
        return response.status_code != 404

    async def bulk(self, writes: Sequence[BulkWrite]) -> Sequence[BulkOutcome]:
        s = self.settings
        if not s.bulk_path:
            return await super().bulk(writes)
        if not 1 <= len(writes) <= s.bulk_max:
            self._failures.fail("POST", s.bulk_path, f"takes 1 to {s.bulk_max} writes (bulk_max)")
        update = {"PUT": "replace", "PATCH": "merge"}[s.update_method]
        operations = [_bulk_operation(w, update) for w in writes]
        response = await self._send("POST", s.bulk_path, body={"operations": operations})
        body = self._reader.json(response)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(writes):
            self._failures.fail(
                "POST", s.bulk_path, f"did not answer one result per operation ({len(writes)}); "
                "check that bulk_path is the collection's bulk endpoint",
                status=response.status_code,
            )  # fmt: skip
        return [
            self._bulk_outcome(w, o, r, response)
            for w, o, r in zip(writes, operations, results, strict=True)
        ]

    def list(self) -> AsyncIterator[ExternalRecord]:
        return self._reader.list(self._get)

    def link(self, external_id: str) -> str:
        s = self.settings
        template = s.link_template or "{base_url}{collection_path}/{id}"
        return template.format(
            base_url=s.base_url, collection_path=s.collection_path,
            object_type=s.object_type, id=quote(str(external_id), safe=""),
        )  # fmt: skip

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- HTTP, and translation of every failure at the boundary ---------------

    async def _audit(self, request: httpx.Request) -> None:
        """httpx request hook: one audit record per call actually sent (retries included)."""
        if self._auditor is None:
            return
        url = request.url
        await self._auditor.record(
            audit_record(
                integration=self._integration,
                provider="rest",
                recipient=f"{url.scheme}://{url.netloc.decode('ascii')}",
                method=request.method,
                target=url.path,
                body=request.content,
            )
        )

    async def _get(self, url: str, params: Mapping[str, str] | None) -> httpx.Response:
        return await self._send("GET", url, params=params)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        missing_ok: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; a 2xx (or a 404 when ``missing_ok``) returns, the rest raises."""
        payload = None if body is None else dict(body)
        request = self._client.build_request(
            method, url, params=params, json=payload, headers=headers
        )
        path = request.url.path
        try:
            async with self.limiter.slot():
                response = await self._client.send(request)
        except TRANSPORT_ERRORS as exc:
            failure = classify(exc, self.settings.timeout_s)
            self._failures.fail(method, path, failure.what, transient=failure.transient, cause=exc)
        if response.is_success or (missing_ok and response.status_code == 404):
            return response
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if is_transient_status(status) and (status == 429 or retry_after is not None):
            # every call to it backs off
            self.limiter.pause(DEFAULT_429_PAUSE_S if retry_after is None else retry_after)
        excerpt = self._failures.excerpt(response)
        raise self._failures.status_error(method, path, status, excerpt, retry_after)

    def _bulk_outcome(
        self, write: BulkWrite, operation: dict[str, Any], result: Any, response: httpx.Response
    ) -> BulkOutcome:
        """One write's part of a bulk answer, judged as that write alone would be."""
        path = self.settings.collection_path
        if write.external_id is not None:
            path = f"{path}/{quote(write.external_id, safe='')}"
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, int) or isinstance(status, bool):
            what = f"got a result without a status: {str(result)[:80]}"
            return self._failures.error("bulk", path, what)
        if write.kind == "delete" and (200 <= status < 300 or status == 404):
            return status != 404
        if 200 <= status < 300:
            try:
                return self._reader.to_record(result.get("item"), response)
            except SinkError as exc:
                return exc
        message = str(result.get("message") or result.get("error") or "")
        excerpt = self._failures.redact(message)[:200]
        return self._failures.status_error(f"bulk {operation['op']}", path, status, excerpt, None)

    def _item_path(self, method: str, external_id: str) -> str:
        if not str(external_id):
            self._failures.fail(
                method, self.settings.collection_path, "needs a non-empty external id"
            )
        return f"{self.settings.collection_path}/{quote(str(external_id), safe='')}"


async def _count_request(request: httpx.Request) -> None:
    """httpx request hook: one external API call for the operation counting, if any."""
    count_call()


def _if_match(row_id: str | None) -> dict[str, str] | None:
    return None if row_id is None else {"If-Match": row_id}


def _bulk_operation(write: BulkWrite, update: str) -> dict[str, Any]:
    """One write as an operation of the reference API's bulk request."""
    operation: dict[str, Any] = {"op": update if write.kind == "update" else write.kind}
    if write.external_id is not None:
        operation["id"] = write.external_id
    if write.expected_row_id is not None:
        operation["rowId"] = write.expected_row_id
    if write.payload is not None:
        operation["fields"] = dict(write.payload)
    return operation
