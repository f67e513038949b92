"""The REST sink: the Sink contract as HTTP calls on one collection, rate-limited and audited."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from cdcsync.errors import SinkPermanentError
from cdcsync.sinks.base import (
    BulkOutcome,
    BulkWrite,
    ExternalRecord,
    Sink,
    call_counter,
    count_call,
)
from cdcsync.sinks.delivery.audit import Auditor, audit_record
from cdcsync.sinks.delivery.ratelimit import (
    DEFAULT_429_PAUSE_S,
    RateLimiter,
    parse_retry_after,
    resolve_workers,
)
from cdcsync.sinks.delivery.sender import Sender
from cdcsync.sinks.delivery.transport import TRANSPORT_ERRORS, classify, make_transport
from cdcsync.sinks.providers.rest.answers import id_problem
from cdcsync.sinks.providers.rest.auth import (
    OAuth2ClientCredentials,
    RedactingFilter,
    make_auth,
    read_token,
)
from cdcsync.sinks.providers.rest.bulk import BulkWriter
from cdcsync.sinks.providers.rest.failures import Failures, is_transient_status
from cdcsync.sinks.providers.rest.paging import CollectionReader
from cdcsync.sinks.providers.rest.settings import RestSettings
from cdcsync.sinks.providers.rest.writes import WriteGuard, create_target, write_headers

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
        self.find_many_max = settings.find_many_max if settings.find_many_param else 0
        environ = os.environ if environ is None else environ
        token = read_token(settings, environ)
        #: How calls carry the credential (setting ``auth``); ``None``: no credential.
        self.auth = make_auth(settings, token)
        secrets = self.auth.secrets if self.auth else tuple
        self._failures = Failures(settings, token, secrets=secrets)
        self._reader = CollectionReader(settings, self._failures)
        self._auditor = auditor
        self._integration = integration
        self.limiter = limiter or RateLimiter.for_worker(
            rate_limit_rps=settings.rate_limit_rps,
            max_concurrency=settings.max_concurrency,
            workers=resolve_workers(settings.workers, environ),
        )
        self._guard = WriteGuard(settings, self._failures, self.get)
        self._bulk = BulkWriter(
            settings, self._failures, self._guard, post=self._post,
            read_json=self._reader.json, to_record=self._reader.to_record,
        )  # fmt: skip
        self._log_filter = RedactingFilter(self._failures.redact)
        if settings.auth == "query":  # httpx's log lines show the URL, the key with it
            logging.getLogger("httpx").addFilter(self._log_filter)
        transport = transport or make_transport(settings.max_connections)
        self._client = httpx.AsyncClient(
            base_url=settings.base_url,
            auth=self.auth,
            headers={"Accept": "application/json"},
            timeout=httpx.Timeout(settings.timeout_s),
            transport=transport,
            event_hooks={"request": [_count_request, self._audit]},
        )
        #: Sends the client's requests without its per-request layers (its hooks, auth,
        #: timeout and cookies kept).
        self._sender = Sender(self._client, transport)

    def __repr__(self) -> str:
        s = self.settings
        return f"RestSink({s.object_type!r}, {s.base_url}{s.collection_path})"

    # -- the Sink contract ---------------------------------------------------

    async def get(self, external_id: str) -> ExternalRecord | None:
        response = await self._send("GET", self._item_path("GET", external_id), missing_ok=True)
        return None if response.status_code == 404 else self._reader.record(response)

    async def find(self, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        return await self._reader.find(self._get, natural_key)

    async def find_many(self, field: str, values: Sequence[Any]) -> Sequence[ExternalRecord] | None:
        return await self._reader.find_many(self._get, field, values)

    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        method, client_id = create_target(self.settings, self._failures, payload)
        headers = _idempotency(self.settings)
        if client_id is None:  # POST: the API picks the id
            path = self.settings.collection_path
            response = await self._send("POST", path, body=payload, headers=headers)
            return await self._reader.written(response, payload, self.get)
        path = self._item_path(method, client_id)
        response = await self._send(method, path, body=payload, headers=headers)
        return await self._reader.written(response, payload, self.get, external_id=client_id)

    async def update(
        self, external_id: str, payload: Mapping[str, Any], *, expected_row_id: str | None = None
    ) -> ExternalRecord:
        method = self.settings.update_method
        path = self._item_path(method, external_id)
        headers = await self._guard.headers(method, path, external_id, expected_row_id)
        headers |= write_headers(self.settings, method)
        response = await self._send(method, path, body=payload, headers=headers)
        return await self._reader.written(response, payload, self.get, external_id=external_id)

    async def patch(self, external_id: str, fields: Mapping[str, Any]) -> ExternalRecord:
        if self.settings.update_method != "PATCH":
            return await super().patch(external_id, fields)
        path = self._item_path("PATCH", external_id)
        headers = write_headers(self.settings, "PATCH")
        response = await self._send("PATCH", path, body=fields, headers=headers)
        return await self._reader.written(response, fields, self.get, external_id=external_id)

    async def delete(self, external_id: str, *, expected_row_id: str | None = None) -> bool:
        path = self._item_path("DELETE", external_id)
        try:
            headers = await self._guard.headers("DELETE", path, external_id, expected_row_id)
        except SinkPermanentError as exc:
            if exc.status_code == 404:  # read_before_write found it gone already
                return False
            raise
        response = await self._send("DELETE", path, missing_ok=True, headers=headers)
        return response.status_code != 404

    async def bulk(self, writes: Sequence[BulkWrite]) -> Sequence[BulkOutcome]:
        s = self.settings
        if not s.bulk_path:
            return await super().bulk(writes)
        return await self._bulk.write(writes)

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
        logging.getLogger("httpx").removeFilter(self._log_filter)
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
                body=b"" if self._is_credential(request) else request.content,
            )
        )

    def _is_credential(self, request: httpx.Request) -> bool:
        """Whether a request's body is a credential (a token request): not even digested."""
        auth = self.auth
        return isinstance(auth, OAuth2ClientCredentials) and auth.is_token_request(request)

    async def _post(self, url: str, body: Mapping[str, Any]) -> httpx.Response:
        return await self._send("POST", url, body=body)

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
        request = self._sender.build(method, url, params=params, json_body=payload, headers=headers)
        path = request.url.path
        try:
            async with self.limiter.slot():
                response = await self._sender.send(request)
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

    def _item_path(self, method: str, external_id: str) -> str:
        if (problem := id_problem(external_id)) is not None:
            self._failures.fail(method, self.settings.collection_path, problem)
        return f"{self.settings.collection_path}/{quote(str(external_id), safe='')}"


def _idempotency(settings: RestSettings) -> dict[str, str]:
    """The idempotency key header of the change being applied, where the API takes one."""
    counter = call_counter.get()
    key = counter.idempotency_key if counter is not None else None
    if settings.idempotency_header is None or key is None:
        return {}
    return {settings.idempotency_header: key}


async def _count_request(request: httpx.Request) -> None:
    """httpx request hook: one external API call for the operation counting, if any."""
    count_call()
