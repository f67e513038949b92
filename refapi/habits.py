"""Habits of other APIs the reference API can take on: how it shapes listings, objects and
write answers, so the ``rest`` provider's settings are tested against each of them.

The defaults are the reference API's own habits (``{"items", "next"}`` pages with an opaque
cursor, objects with a ``rowId`` and an ``ETag``, writes answered by the object). Switch
them with ``RefApi(habits={...})`` or ``PUT /_admin/settings {"habits": {...}}``:

- ``envelope``: ``items`` (own), ``bare`` (a JSON array, json-server), ``data``
  (Directus: ``{"data": [...]}``, objects ``{"data": {...}}``, ``?meta=total_count`` adds
  ``{"meta": {"total_count": n}}``), ``drf`` (``{"count", "next", "previous", "results"}``
  with absolute links).
- ``paging``: ``cursor`` (own: ``cursor`` + ``limit``), ``offset`` (``offset`` + ``limit``),
  ``page`` (``page`` from 1 + ``size``).
- ``link_header``: a ``Link`` header with ``rel="next"`` (and ``first``); ``total_header``:
  an ``X-Total-Count`` header.
- ``create_answer``: ``object`` (201 + object + Location), ``id`` (201 ``{"id": ...}``),
  ``location`` (201, empty body, a Location header); ``update_answer``: ``object`` or
  ``empty`` (PUT and PATCH answered 204).
- ``versions``: whether objects carry ``rowId``; ``etag``: whether answers carry ``ETag``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from .answers import BadRequestError
from .store import Store

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Habits",
    "created_answer",
    "listing_answer",
    "object_answer",
    "updated_answer",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class Habits(BaseModel):
    """How this instance shapes its answers (see the module docstring); defaults: its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    envelope: Literal["items", "bare", "data", "drf"] = "items"
    paging: Literal["cursor", "offset", "page"] = "cursor"
    link_header: bool = False
    total_header: bool = False
    create_answer: Literal["object", "id", "location"] = "object"
    update_answer: Literal["object", "empty"] = "object"
    versions: bool = True
    etag: bool = True

    def changed(self, changes: Mapping[str, Any]) -> Habits:
        """These habits with ``changes`` applied and validated (a partial update)."""
        if not isinstance(changes, Mapping):
            raise BadRequestError("habits must be a JSON object of the habits to change")
        return Habits.model_validate({**self.model_dump(), **changes})

    def shown(self) -> dict[str, Any]:
        """The habits that differ from the reference API's own."""
        return self.model_dump(exclude_defaults=True)


def listing_answer(habits: Habits, store: Store, request: web.Request) -> web.Response:
    """``GET /api/v1/{collection}`` as these habits page and wrap it."""
    query, collection = request.query, request.match_info["collection"]
    size_param = "size" if habits.paging == "page" else "limit"
    limit = _number(query, size_param, DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    reserved = {size_param, habits.paging} | ({"meta"} if habits.envelope == "data" else set())
    filters = {k: v for k, v in query.items() if k not in reserved}
    counted = habits.total_header or habits.envelope in ("data", "drf")
    matching = store.matching(collection, filters) if counted or habits.paging != "cursor" else []
    if habits.paging == "cursor":
        page = store.page(
            collection, limit=limit, cursor=query.get("cursor") or None, filters=filters
        )
        items, after, before = page.items, ({"cursor": page.next} if page.next else None), None
    else:
        items, after, before = _window(habits.paging, query, matching, limit)
    links = {
        rel: str(request.url.update_query(q)) for rel, q in (("next", after), ("prev", before)) if q
    }
    shown = [_shown(habits, item) for item in items]
    return web.json_response(
        _page_body(habits, request, shown, links, total=len(matching), cursor=after),
        headers=_page_headers(habits, request, links, total=len(matching)),
    )


def _window(
    paging: str, query: Mapping[str, str], matching: list[dict[str, Any]], limit: int
) -> tuple[list[dict[str, Any]], dict[str, str] | None, dict[str, str] | None]:
    """Offset or page paging: the items asked for, and the next and previous pages' queries."""
    first, step = (1, 1) if paging == "page" else (0, limit)
    at = _number(query, paging, first, low=first, high=None)
    start = (at - first) * limit if paging == "page" else at
    after = {paging: str(at + step)} if start + limit < len(matching) else None
    before = {paging: str(max(first, at - step))} if at > first else None
    return matching[start : start + limit], after, before


def object_answer(
    habits: Habits, record: Mapping[str, Any], *, status: int = 200, **headers: str
) -> web.Response:
    """One object (a GET, or a write answered by the object), as these habits show it."""
    body: Any = _shown(habits, record)
    if habits.envelope == "data":
        body = {"data": body}
    etag = {"ETag": f'"{record["rowId"]}"'} if habits.etag else {}
    return web.json_response(body, status=status, headers={**etag, **headers})


def created_answer(habits: Habits, record: Mapping[str, Any], location: str) -> web.Response:
    """The answer to a create: the object, only its id, or only a Location header."""
    if habits.create_answer == "location":
        return web.Response(status=201, headers={"Location": location})
    if habits.create_answer == "id":
        body: Any = {"id": record["id"]}
        return web.json_response({"data": body} if habits.envelope == "data" else body, status=201)
    return object_answer(habits, record, status=201, Location=location)


def updated_answer(habits: Habits, record: Mapping[str, Any]) -> web.Response:
    """The answer to a PUT or PATCH: the object, or 204 without a body."""
    return (
        web.Response(status=204)
        if habits.update_answer == "empty"
        else object_answer(habits, record)
    )


def _page_body(
    habits: Habits,
    request: web.Request,
    items: list[dict[str, Any]],
    links: Mapping[str, str],
    *,
    total: int,
    cursor: Mapping[str, str] | None,
) -> Any:
    match habits.envelope:
        case "bare":
            return items
        case "data":
            wanted = request.query.get("meta", "")
            counted = wanted == "*" or "total_count" in wanted.split(",")
            return {"data": items, "meta": {"total_count": total}} if counted else {"data": items}
        case "drf":
            return {
                "count": total, "next": links.get("next"), "previous": links.get("prev"),
                "results": items,
            }  # fmt: skip
    next_cursor = cursor.get("cursor") if cursor and habits.paging == "cursor" else None
    return {"items": items, "next": next_cursor}


def _page_headers(
    habits: Habits, request: web.Request, links: Mapping[str, str], *, total: int
) -> dict[str, str]:
    headers = {"X-Total-Count": str(total)} if habits.total_header else {}
    if habits.link_header:
        first = {"first": str(request.url.without_query_params("cursor", "offset", "page"))}
        headers["Link"] = ", ".join(
            f'<{url}>; rel="{rel}"' for rel, url in {**first, **links}.items()
        )
    return headers


def _shown(habits: Habits, record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the API shows it: without its ``rowId`` when it keeps no versions."""
    return {k: v for k, v in record.items() if habits.versions or k != "rowId"}


def _number(
    query: Mapping[str, str], name: str, default: int, *, low: int, high: int | None
) -> int:
    """The integer query parameter ``name``, within ``low``..``high``; else a 400."""
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise BadRequestError(f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequestError(f"{name} must be {bound}")
    return value
