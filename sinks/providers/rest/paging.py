"""Listing a REST collection page by page (cursor, Link header, offset, page or one request),
and finding one object by its natural key.

A listing that cannot be read completely (an error mid-way, a repeated cursor or page, a
total not reached) raises: the poller must never take a partial listing for a complete one,
or it would report the objects it did not see as deleted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx

from cdcsync.sinks.base import ExternalRecord, as_query_text
from cdcsync.sinks.providers.rest.answers import AnswerReader
from cdcsync.sinks.providers.rest.pointer import MISSING, escape_token, resolve

__all__ = ["MAX_PAGES", "CollectionReader", "Get", "Page"]

#: Sends ``GET url?params`` (through the sink's client, limiter and error translation).
Get = Callable[[str, Mapping[str, str] | None], Awaitable[httpx.Response]]

#: A listing longer than this is taken for an API that pages in circles.
MAX_PAGES = 100_000


@dataclass(frozen=True, slots=True)
class Page:
    """One listing answer: its records, where the next page is, and the total if announced."""

    records: Sequence[ExternalRecord]
    #: The cursor or next link at next_path (cursor paging) or the ``Link`` rel=next URL.
    next: str | None
    total: int | None


#: The next request of a listing: a path or same-origin URL and its query (None: the URL's).
_Request = tuple[str, dict[str, str] | None]


class CollectionReader(AnswerReader):
    """Lists a collection and finds objects in it, on top of reading single answers."""

    async def find(self, get: Get, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        """The one object whose fields equal ``natural_key``, found through the query filters."""
        s, path, fail = self.settings, self.settings.collection_path, self._failures.fail
        if not natural_key:
            fail("GET", path, "cannot find() without natural key fields")
        reserved = {s.limit_param, s.cursor_param, s.offset_param, s.page_param, *s.list_params}
        if clash := sorted(reserved & {s.filter_param.format(field=k) for k in natural_key}):
            fail("GET", path, f"cannot filter on {clash}: they are the paging or list_params")
        for name, value in natural_key.items():
            if isinstance(value, dict | list | tuple):
                fail("GET", path, f"cannot filter on {name!r}: the value is not a scalar")
        params = {s.filter_param.format(field=k): as_query_text(v) for k, v in natural_key.items()}
        params |= dict(s.list_params)
        if s.paging != "none":
            params[s.limit_param] = "2"
        records = self.page(await get(path, params)).records
        key = sorted(natural_key)
        if not all(_matches(record.fields, natural_key) for record in records):
            fail("GET", path, f"ignored the filters {key}, so find() cannot use them")
        if len(records) > 1:
            fail(
                "GET", path, f"found several {s.object_type} objects: the natural key {key} is "
                "not unique; deduplicate them externally or choose another key",
            )  # fmt: skip
        return records[0] if records else None

    async def find_many(
        self, get: Get, field: str, values: Sequence[Any]
    ) -> Sequence[ExternalRecord] | None:
        """The objects whose ``field`` is one of ``values``, through ``find_many_param``;
        ``None`` when the answer may not hold them all (a full page, a value holding a
        comma): the caller then finds them one by one."""
        s, path, fail = self.settings, self.settings.collection_path, self._failures.fail
        assert s.find_many_param is not None and values
        texts = {as_query_text(v) for v in values}
        if any("," in t for t in texts):
            return None
        params = {s.find_many_param.format(field=field): ",".join(sorted(texts))}
        params |= dict(s.list_params)
        # Room for every value twice: a duplicated natural key shows, as in find().
        limit = 2 * len(texts) + 1
        if s.paging != "none":
            params[s.limit_param] = str(limit)
        page = self.page(await get(path, params))
        if s.paging != "none" and len(page.records) >= limit:
            return None
        if stray := [r.id for r in page.records if as_query_text(r.fields.get(field)) not in texts]:
            fail("GET", path, f"ignored the filter on {field!r} (object {stray[0]} is not one "
                              "of the values), so find_many_param cannot be used")  # fmt: skip
        return page.records

    async def list(self, get: Get) -> AsyncIterator[ExternalRecord]:
        """Every object, page after page as ``paging`` says, until the last page."""
        request: _Request | None = (self.settings.collection_path, self._first_params())
        followed: set[str] = set()
        previous: tuple[str, ...] = ()
        listed = 0
        for _ in range(MAX_PAGES):
            if request is None:
                return
            page = self.page(await get(*request))
            ids = tuple(record.id for record in page.records)
            if ids and ids == previous:
                self._stop(f"answered the same page twice (ids {ids[0]}…); {self._param_hint()}")
            previous = ids
            for record in page.records:
                yield record
            listed += len(page.records)
            request = self._next_request(page, listed, request[1], followed)
        if request is not None:
            self._stop(f"gave more than {MAX_PAGES} pages; {self._param_hint()}")

    def page(self, response: httpx.Response) -> Page:
        """The records of one listing answer, the next cursor or link, and the total."""
        s, body = self.settings, self.json(response)
        records = [self.to_record(item, response) for item in self._items(body, response)]
        next_value: str | None = None
        if s.paging == "cursor" and s.next_path is not None:
            found = resolve(body, s.next_path)
            next_value = None if found in (MISSING, None, "") else str(found)
        elif s.paging == "link_header" and (link := response.links.get("next", {}).get("url")):
            next_value = str(response.request.url.join(link))
        counted = s.paging in ("offset", "page") or s.total_path or s.total_header
        total = self._total(body, response) if counted else None
        return Page(records=records, next=next_value, total=total)

    # -- the steps of a listing ------------------------------------------------

    def _first_params(self) -> dict[str, str]:
        s = self.settings
        params = dict(s.list_params)
        if s.paging != "none":
            params[s.limit_param] = str(s.page_size)
        if s.paging == "offset":
            params[s.offset_param] = "0"
        elif s.paging == "page":
            params[s.page_param] = str(s.first_page)
        return params

    def _next_request(
        self, page: Page, listed: int, params: dict[str, str] | None, followed: set[str]
    ) -> _Request | None:
        """Where the page after ``page`` is, or ``None`` after the last one."""
        s = self.settings
        if s.paging == "none":
            return None
        if s.paging in ("cursor", "link_header"):
            if page.next is None:
                if page.total is not None and listed < page.total:
                    self._stop(f"ended after {listed} of the {page.total} objects it announced")
                return None
            if page.next in followed:
                self._stop(f"repeated the cursor or next link {page.next!r}")
            followed.add(page.next)
            if page.next.startswith(("http://", "https://")):  # a next link, not a cursor
                return self._same_origin(page.next), None
            cursor = {s.cursor_param: page.next}
            return s.collection_path, dict(s.list_params) | {
                s.limit_param: str(s.page_size)
            } | cursor
        if self._last_page(page, listed):
            return None
        assert params is not None  # offset and page requests always carry their query
        if s.paging == "offset":
            return s.collection_path, params | {s.offset_param: str(listed)}
        return s.collection_path, params | {s.page_param: str(int(params[s.page_param]) + 1)}

    def _last_page(self, page: Page, listed: int) -> bool:
        """Offset and page paging: the total is reached, or (without one) a short page came."""
        s, count = self.settings, len(page.records)
        if page.total is None:
            return count < s.page_size
        if listed >= page.total:
            return True
        if count == 0:
            self._stop(
                f"ended after {listed} of the {page.total} objects its total announced: objects "
                "were deleted while listing, or total_path / total_header is wrong"
            )
        if s.paging == "page" and count < s.page_size:
            self._stop(
                f"answered {count} objects for {s.limit_param}={s.page_size} before the total "
                f"({page.total}): the API caps the page size; lower page_size"
            )
        return False

    def _items(self, body: Any, response: httpx.Response) -> Sequence[Any]:
        """The list at items_path; a hint at the likely setting when it is not there."""
        s = self.settings
        items = resolve(body, s.items_path)
        if isinstance(items, list):
            return items
        lists = (
            [k for k, v in body.items() if isinstance(v, list)] if isinstance(body, dict) else []
        )
        if isinstance(body, list):
            hint = 'the listing is a bare array: set items_path to ""'
        elif lists:
            hint = f'the list seems to be at "/{escape_token(lists[0])}": set items_path to it'
        else:
            hint = "check items_path"
        self._failures.fail(
            response.request.method, response.request.url.path,
            f"answered no list at items_path {s.items_path!r}; {hint}",
            status=response.status_code,
        )  # fmt: skip

    def _total(self, body: Any, response: httpx.Response) -> int | None:
        """The total count at total_path or in total_header, if either is set."""
        s = self.settings
        if s.total_path is not None:
            found, where = resolve(body, s.total_path), f"total_path {s.total_path!r}"
        elif s.total_header is not None:
            found, where = response.headers.get(s.total_header, MISSING), s.total_header
        else:
            return None
        if isinstance(found, str) and found.strip().isascii() and found.strip().isdigit():
            found = int(found)
        if isinstance(found, int) and not isinstance(found, bool) and found >= 0:
            return found
        self._failures.fail(
            response.request.method, response.request.url.path,
            f"answered no total count at {where} (found {found!r}); check it, and list_params "
            'if the API counts only on request (Directus: {"meta": "total_count"})',
            status=response.status_code,
        )  # fmt: skip

    def _same_origin(self, link: str) -> str:
        base, target = httpx.URL(self.settings.base_url), httpx.URL(link)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            self._stop(
                f"gave a next link to another origin ({target.scheme}://{target.host}); "
                "not sending the credential there"
            )
        return link

    def _stop(self, what: str) -> NoReturn:
        """Abandon the listing: it cannot be read completely."""
        self._failures.fail("GET", self.settings.collection_path, what)

    def _param_hint(self) -> str:
        s = self.settings
        match s.paging:
            case "offset":
                return f"does the API take offset_param {s.offset_param!r}?"
            case "page":
                return f"does the API take page_param {s.page_param!r}?"
        return "check paging and its parameters"


def _matches(fields: Mapping[str, Any], natural_key: Mapping[str, Any]) -> bool:
    return all(
        name in fields
        and (fields[name] == value or as_query_text(fields[name]) == as_query_text(value))
        for name, value in natural_key.items()
    )
