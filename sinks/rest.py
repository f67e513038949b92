"""A generic JSON REST provider: one collection of one external API, configured not coded.

Most CRM and case-management APIs share one shape (a paged, filterable collection
URL, item URLs, an id and a ``rowId`` version token per object, a bearer token);
:class:`RestSettings` names what differs. :class:`RestSink` translates every
failure into ``SinkTransientError`` or ``SinkPermanentError``, never showing the secret,
and makes every call through a :class:`~cdcsync.sinks.ratelimit.RateLimiter` (the API's
``rate_limit_rps`` and ``max_concurrency``, shared out between workers; a 429 pauses it).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from typing import Any, Literal, NoReturn
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from cdcsync.errors import (
    ConfigurationError,
    SinkConflictError,
    SinkError,
    SinkPermanentError,
    SinkTransientError,
)
from cdcsync.sinks.audit import Auditor, audit_record
from cdcsync.sinks.base import (
    BulkOutcome,
    BulkWrite,
    ExternalRecord,
    Sink,
    check_link_template,
    count_call,
)
from cdcsync.sinks.ratelimit import (
    DEFAULT_429_PAUSE_S,
    RateLimiter,
    parse_retry_after,
    resolve_workers,
)
from cdcsync.sinks.registry import Provider
from cdcsync.sinks.transport import TRANSPORT_ERRORS, classify, make_transport

__all__ = ["RestSettings", "RestSink", "parse_retry_after", "provider"]

logger = logging.getLogger(__name__)
# httpx logs every request at INFO: ~5% of a busy worker's CPU (bench/). Each call is
# counted in results and recorded on the audit topic instead.
logging.getLogger("httpx").setLevel(logging.WARNING)

_EXCERPT_CHARS = 200
_TRANSIENT_STATUSES = frozenset({408, 429})


class RestSettings(BaseModel):
    """Where the collection lives and how its JSON is shaped; secrets only by env var name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str
    collection_path: str
    object_type: str = Field(min_length=1)
    id_field: str = Field(default="id", min_length=1)
    version_field: str | None = "rowId"
    auth_header: str = Field(default="Authorization", min_length=1)
    auth_scheme: str = "Bearer"
    #: The credential, from the configuration's ``secrets: {token: {env|file: ...}}``.
    token: SecretStr | None = None
    #: Shorthand for an inline target: the environment variable holding the token.
    token_env: str | None = None
    #: How updates are sent: PUT replaces the mapped fields, PATCH merges them.
    update_method: Literal["PUT", "PATCH"] = "PUT"
    page_size: int = Field(default=100, ge=1, le=10_000)
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    items_field: str = "items"
    next_field: str = "next"
    link_template: str | None = None
    #: The collection's bulk endpoint (the reference API's shape: ``{"operations": [...]}``
    #: answered by ``{"results": [...]}``); writes of concurrent changes then share calls.
    bulk_path: str | None = None
    bulk_max: int = Field(default=100, ge=2, le=1000)
    timeout_s: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=20, ge=1)
    #: The API's budget across all workers; each worker takes 1/workers (see sinks.ratelimit).
    rate_limit_rps: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    #: Workers sharing the budget; unset: $CDCSYNC_WORKERS, else 1.
    workers: int | None = Field(default=None, ge=1)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"is not a URL ({exc})") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http(s) URL, e.g. https://crm.example.com")
        return value.rstrip("/")

    @field_validator("collection_path", "bulk_path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/"):
            raise ValueError("must start with '/', e.g. /api/v1/contacts")
        return value.rstrip("/")

    @field_validator("link_template")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        return check_link_template(value, "base_url", "collection_path", "object_type", "id")


def _if_match(row_id: str | None) -> dict[str, str] | None:
    return None if row_id is None else {"If-Match": row_id}


class _HeaderAuth(httpx.Auth):
    """Adds the credential to each request without it ever sitting in the client's headers."""

    def __init__(self, header: str, scheme: str, token: SecretStr) -> None:
        self._header, self._scheme, self._token = header, scheme, token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        secret = self._token.get_secret_value()
        request.headers[self._header] = f"{self._scheme} {secret}" if self._scheme else secret
        yield request

    def __repr__(self) -> str:
        return f"_HeaderAuth(header={self._header!r}, token={self._token})"


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
        self._token = _read_token(settings, environ)
        self._auditor = auditor
        self._integration = integration
        self.limiter = limiter or RateLimiter.for_worker(
            rate_limit_rps=settings.rate_limit_rps,
            max_concurrency=settings.max_concurrency,
            workers=resolve_workers(settings.workers, environ),
        )
        auth = None
        if self._token is not None:
            auth = _HeaderAuth(settings.auth_header, settings.auth_scheme, self._token)
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
        return None if response.status_code == 404 else self._record(response)

    async def find(self, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        s, path = self.settings, self.settings.collection_path
        if not natural_key:
            self._fail("GET", path, "cannot find() without natural key fields")
        if clash := sorted({s.limit_param, s.cursor_param} & set(natural_key)):
            self._fail("GET", path, f"cannot filter on {clash}: they are the paging parameters")
        for name, value in natural_key.items():
            if isinstance(value, dict | list | tuple):
                self._fail("GET", path, f"cannot filter on {name!r}: the value is not a scalar")
        params = {k: _as_text(v) for k, v in natural_key.items()} | {s.limit_param: "2"}
        records, _ = self._page(await self._send("GET", path, params=params))
        key = sorted(natural_key)
        if not all(_matches(record.fields, natural_key) for record in records):
            self._fail("GET", path, f"ignored the filters {key}, so find() cannot use them")
        if len(records) > 1:
            self._fail(
                "GET", path, f"found several {s.object_type} objects: the natural key {key} is "
                "not unique; deduplicate them externally or choose another key",
            )  # fmt: skip
        return records[0] if records else None

    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        return self._record(await self._send("POST", self.settings.collection_path, body=payload))

    async def update(
        self, external_id: str, payload: Mapping[str, Any], *, expected_row_id: str | None = None
    ) -> ExternalRecord:
        method = self.settings.update_method
        path = self._item_path(method, external_id)
        headers = _if_match(expected_row_id)
        return self._record(await self._send(method, path, body=payload, headers=headers))

    async def patch(self, external_id: str, fields: Mapping[str, Any]) -> ExternalRecord:
        if self.settings.update_method != "PATCH":
            return await super().patch(external_id, fields)
        path = self._item_path("PATCH", external_id)
        return self._record(await self._send("PATCH", path, body=fields))

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
            self._fail("POST", s.bulk_path, f"takes 1 to {s.bulk_max} writes (bulk_max)")
        update = {"PUT": "replace", "PATCH": "merge"}[s.update_method]
        operations = [_bulk_operation(w, update) for w in writes]
        response = await self._send("POST", s.bulk_path, body={"operations": operations})
        body = self._json(response)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(writes):
            self._fail(
                "POST", s.bulk_path, f"did not answer one result per operation ({len(writes)}); "
                "check that bulk_path is the collection's bulk endpoint",
                status=response.status_code,
            )  # fmt: skip
        return [
            self._bulk_outcome(w, o, r, response)
            for w, o, r in zip(writes, operations, results, strict=True)
        ]

    def _bulk_outcome(
        self, write: BulkWrite, operation: dict[str, Any], result: Any, response: httpx.Response
    ) -> BulkOutcome:
        """One write's part of a bulk answer, judged as that write alone would be."""
        path = self.settings.collection_path
        if write.external_id is not None:
            path = f"{path}/{quote(write.external_id, safe='')}"
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, int) or isinstance(status, bool):
            return self._error("bulk", path, f"got a result without a status: {str(result)[:80]}")
        if write.kind == "delete" and (200 <= status < 300 or status == 404):
            return status != 404
        if 200 <= status < 300:
            try:
                return self._to_record(result.get("item"), response)
            except SinkError as exc:
                return exc
        excerpt = self._redact(str(result.get("message") or result.get("error") or ""))[:200]
        return self._status_error(f"bulk {operation['op']}", path, status, excerpt, None)

    async def list(self) -> AsyncIterator[ExternalRecord]:
        s = self.settings
        url: str = s.collection_path
        params: dict[str, str] | None = {s.limit_param: str(s.page_size)}
        seen: set[str] = set()
        while True:
            records, next_value = self._page(await self._send("GET", url, params=params))
            for record in records:
                yield record
            if next_value is None:
                return
            if next_value in seen:
                self._fail("GET", s.collection_path, f"repeated the cursor {next_value!r}")
            seen.add(next_value)
            if next_value.startswith(("http://", "https://")):  # a next link, not a cursor
                url, params = self._same_origin(next_value), None
            else:
                url = s.collection_path
                params = {s.limit_param: str(s.page_size), s.cursor_param: next_value}

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
            self._fail(method, path, failure.what, transient=failure.transient, cause=exc)
        if response.is_success or (missing_ok and response.status_code == 404):
            return response
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        busy = status >= 500 or status in _TRANSIENT_STATUSES
        if busy and (status == 429 or retry_after is not None):  # every call to it backs off
            self.limiter.pause(DEFAULT_429_PAUSE_S if retry_after is None else retry_after)
        raise self._status_error(method, path, status, self._excerpt(response), retry_after)

    def _status_error(
        self, method: str, path: str, status: int, excerpt: str, retry_after: float | None
    ) -> SinkError:
        """The error for an HTTP status: transient for 5xx, 408 and 429, else permanent."""
        if status >= 500 or status in _TRANSIENT_STATUSES:
            wait = f" (Retry-After {retry_after:g}s)" if retry_after is not None else ""
            what = f"answered HTTP {status}{wait}: {excerpt}; the API is busy or down, will retry"
            return self._error(
                method, path, what, transient=True, status=status, retry_after=retry_after
            )
        return self._error(
            method, path, f"answered HTTP {status}: {excerpt}; {self._hint(status)}", status=status,
            conflict=status in (409, 412),
        )  # fmt: skip

    def _hint(self, status: int) -> str:
        s = self.settings
        if status in (401, 403):
            if s.token is not None:
                where = "the configuration's secret `token`"
            elif s.token_env:
                where = f"the variable {s.token_env}"
            else:
                where = "nowhere (no secret `token` configured)"
            problem = "is missing or wrong" if status == 401 else "lacks permission"
            return f"the credential from {where} {problem}"
        if status == 404:
            return f"the {s.object_type} does not exist (deleted externally?) or the path is wrong"
        if status in (409, 412):
            return "the object changed concurrently; re-read it and decide again"
        if status in (400, 422):
            return "the API rejected the payload; check the field mapping"
        if 300 <= status < 400:
            return "unexpected redirect; check base_url and collection_path"
        return "the API refused the request; retrying will not help"

    def _fail(
        self, method: str, path: str, what: str, *, cause: BaseException | None = None, **kw: Any
    ) -> NoReturn:
        """Raise :meth:`_error` for one failed call, ``from`` its cause."""
        raise self._error(method, path, what, **kw) from cause

    def _error(
        self,
        method: str,
        path: str,
        what: str,
        *,
        transient: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        conflict: bool = False,
    ) -> SinkError:
        """The sink error for one failed call, its message free of the credential."""
        message = self._redact(f"{self.object_type} API: {method} {path} {what}")
        logger.debug("%s", message)
        error_class: type[SinkError] = SinkPermanentError
        if transient:
            error_class = SinkTransientError
        elif conflict:
            error_class = SinkConflictError
        return error_class(message, status_code=status, retry_after=retry_after)

    def _record(self, response: httpx.Response) -> ExternalRecord:
        return self._to_record(self._json(response), response)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._fail(
                response.request.method, response.request.url.path,
                f"answered HTTP {response.status_code} with a body that is not JSON: "
                f"{self._excerpt(response)}; check base_url and collection_path",
                status=response.status_code, cause=exc,
            )  # fmt: skip

    def _to_record(self, data: Any, response: httpx.Response) -> ExternalRecord:
        s = self.settings
        object_id = data.get(s.id_field) if isinstance(data, dict) else None
        if isinstance(object_id, bool) or not isinstance(object_id, str | int) or object_id == "":
            self._fail(
                response.request.method, response.request.url.path,
                f"returned something that is not a {s.object_type} with an '{s.id_field}' "
                "field; check id_field and items_field",
                status=response.status_code,
            )  # fmt: skip
        version = data.get(s.version_field) if s.version_field else None
        fields = {k: v for k, v in data.items() if k not in (s.id_field, s.version_field)}
        row_id = None if version is None else str(version)
        return ExternalRecord(id=str(object_id), row_id=row_id, fields=fields)

    def _page(self, response: httpx.Response) -> tuple[Sequence[ExternalRecord], str | None]:
        """The records of one listing page and the next cursor (``None`` on the last page)."""
        s, body = self.settings, self._json(response)
        items = _dig(body, s.items_field)
        if not isinstance(items, list):
            what = f"returned no '{s.items_field}' list; check items_field"
            self._fail(response.request.method, response.request.url.path, what)
        next_value = _dig(body, s.next_field)
        records = [self._to_record(item, response) for item in items]
        return records, None if next_value in (None, "") else str(next_value)

    def _item_path(self, method: str, external_id: str) -> str:
        if not str(external_id):
            self._fail(method, self.settings.collection_path, "needs a non-empty external id")
        return f"{self.settings.collection_path}/{quote(str(external_id), safe='')}"

    def _same_origin(self, link: str) -> str:
        base, target = httpx.URL(self.settings.base_url), httpx.URL(link)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            self._fail(
                "GET", self.settings.collection_path, "gave a next link to another origin "
                f"({target.scheme}://{target.host}); not sending the credential there",
            )  # fmt: skip
        return link

    def _redact(self, text: str) -> str:
        secret = self._token.get_secret_value() if self._token is not None else ""
        return text.replace(secret, "**********") if secret else text

    def _excerpt(self, response: httpx.Response) -> str:
        """The start of the body on one line, redacted before it is cut so no secret is halved."""
        try:
            text = self._redact(re.sub(r"\s+", " ", response.text).strip())
        except (UnicodeDecodeError, LookupError):
            return "<undecodable body>"
        if len(text) > _EXCERPT_CHARS:
            text = text[:_EXCERPT_CHARS] + "…"
        return text or "<empty body>"


async def _count_request(request: httpx.Request) -> None:
    """httpx request hook: one external API call for the operation counting, if any."""
    count_call()


def _read_token(settings: RestSettings, environ: Mapping[str, str]) -> SecretStr | None:
    if settings.token is not None:
        return settings.token
    if settings.token_env is None:
        return None
    value = environ.get(settings.token_env, "")
    if not value.strip():
        raise ConfigurationError(
            f"{settings.object_type} sink: the environment variable {settings.token_env} "
            "(named by token_env) is not set or empty; export the API token in it"
        )
    return SecretStr(value.strip())


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


def _as_text(value: Any) -> str:
    """A value as a query parameter: strings as is, other JSON values as JSON text."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _matches(fields: Mapping[str, Any], natural_key: Mapping[str, Any]) -> bool:
    return all(
        name in fields and (fields[name] == value or _as_text(fields[name]) == _as_text(value))
        for name, value in natural_key.items()
    )


def _dig(body: Any, path: str) -> Any:
    """``body[path]``, or for a dotted path such as ``paging.next.after`` the nested value."""
    if isinstance(body, dict) and path in body:
        return body[path]
    for part in path.split("."):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


provider = Provider(
    identifier="rest",
    display_name="Generic JSON REST API",
    description=(
        "One collection of a JSON REST API with an id and a rowId version per object, "
        "paged listing, If-Match updates, a bearer token and a rate limit."
    ),
    settings_model=RestSettings,
    factory=lambda settings, context: RestSink(
        settings,
        environ=context.environ,
        auditor=context.auditor,
        integration=context.integration,
    ),
)
