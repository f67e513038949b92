"""Reading a REST collection: JSON answers into records, listing page by page, finding by key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from cdcsync.sinks.base import ExternalRecord
from cdcsync.sinks.providers.rest.failures import Failures
from cdcsync.sinks.providers.rest.settings import RestSettings

__all__ = ["CollectionReader", "Get"]

#: Sends ``GET url?params`` (through the sink's client, limiter and error translation).
Get = Callable[[str, Mapping[str, str] | None], Awaitable[httpx.Response]]


class CollectionReader:
    """Turns a collection's answers into :class:`ExternalRecord` objects, or into errors."""

    def __init__(self, settings: RestSettings, failures: Failures) -> None:
        self.settings = settings
        self._failures = failures

    async def find(self, get: Get, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        """The one object whose fields equal ``natural_key``, found through the query filters."""
        s, path, fail = self.settings, self.settings.collection_path, self._failures.fail
        if not natural_key:
            fail("GET", path, "cannot find() without natural key fields")
        if clash := sorted({s.limit_param, s.cursor_param} & set(natural_key)):
            fail("GET", path, f"cannot filter on {clash}: they are the paging parameters")
        for name, value in natural_key.items():
            if isinstance(value, dict | list | tuple):
                fail("GET", path, f"cannot filter on {name!r}: the value is not a scalar")
        params = {k: _as_text(v) for k, v in natural_key.items()} | {s.limit_param: "2"}
        records, _ = self.page(await get(path, params))
        key = sorted(natural_key)
        if not all(_matches(record.fields, natural_key) for record in records):
            fail("GET", path, f"ignored the filters {key}, so find() cannot use them")
        if len(records) > 1:
            fail(
                "GET", path, f"found several {s.object_type} objects: the natural key {key} is "
                "not unique; deduplicate them externally or choose another key",
            )  # fmt: skip
        return records[0] if records else None

    async def list(self, get: Get) -> AsyncIterator[ExternalRecord]:
        """Every object, following the cursor or next link of each page to the last one."""
        s = self.settings
        url: str = s.collection_path
        params: dict[str, str] | None = {s.limit_param: str(s.page_size)}
        seen: set[str] = set()
        while True:
            records, next_value = self.page(await get(url, params))
            for record in records:
                yield record
            if next_value is None:
                return
            if next_value in seen:
                self._failures.fail("GET", s.collection_path, f"repeated the cursor {next_value!r}")
            seen.add(next_value)
            if next_value.startswith(("http://", "https://")):  # a next link, not a cursor
                url, params = self._same_origin(next_value), None
            else:
                url = s.collection_path
                params = {s.limit_param: str(s.page_size), s.cursor_param: next_value}

    def record(self, response: httpx.Response) -> ExternalRecord:
        """The object a response's body holds."""
        return self.to_record(self.json(response), response)

    def json(self, response: httpx.Response) -> Any:
        """The response's body as JSON; a body that is not JSON is a permanent error."""
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._failures.fail(
                response.request.method, response.request.url.path,
                f"answered HTTP {response.status_code} with a body that is not JSON: "
                f"{self._failures.excerpt(response)}; check base_url and collection_path",
                status=response.status_code, cause=exc,
            )  # fmt: skip

    def to_record(self, data: Any, response: httpx.Response) -> ExternalRecord:
        """One object of the API (``data``, from ``response``) as a record: id, version, fields."""
        s = self.settings
        object_id = data.get(s.id_field) if isinstance(data, dict) else None
        if isinstance(object_id, bool) or not isinstance(object_id, str | int) or object_id == "":
            self._failures.fail(
                response.request.method, response.request.url.path,
                f"returned something that is not a {s.object_type} with an '{s.id_field}' "
                "field; check id_field and items_field",
                status=response.status_code,
            )  # fmt: skip
        version = data.get(s.version_field) if s.version_field else None
        fields = {k: v for k, v in data.items() if k not in (s.id_field, s.version_field)}
        row_id = None if version is None else str(version)
        return ExternalRecord(id=str(object_id), row_id=row_id, fields=fields)

    def page(self, response: httpx.Response) -> tuple[Sequence[ExternalRecord], str | None]:
        """The records of one listing page and the next cursor (``None`` on the last page)."""
        s, body = self.settings, self.json(response)
        items = _dig(body, s.items_field)
        if not isinstance(items, list):
            what = f"returned no '{s.items_field}' list; check items_field"
            self._failures.fail(response.request.method, response.request.url.path, what)
        next_value = _dig(body, s.next_field)
        records = [self.to_record(item, response) for item in items]
        return records, None if next_value in (None, "") else str(next_value)

    def _same_origin(self, link: str) -> str:
        base, target = httpx.URL(self.settings.base_url), httpx.URL(link)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            self._failures.fail(
                "GET", self.settings.collection_path, "gave a next link to another origin "
                f"({target.scheme}://{target.host}); not sending the credential there",
            )  # fmt: skip
        return link


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
