"""Listing guards of the rest provider (a listing is complete or raises), JSON Pointers, and
the answer/paging settings themselves; misbehaving APIs are httpx mocks."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cdcsync.errors import SinkPermanentError
from cdcsync.sinks.providers.rest import RestSettings, RestSink, paging
from cdcsync.sinks.providers.rest.pointer import MISSING, check_pointer, resolve

BASE = "https://crm.example.com"
PATH = "/api/v1/contacts"


def _settings(**kw: Any) -> RestSettings:
    return RestSettings(base_url=BASE, collection_path=PATH, object_type="contact", **kw)


def _mock(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> RestSink:
    return RestSink(_settings(**kw), transport=httpx.MockTransport(handler), environ={})


async def _list(sink: RestSink) -> list[str]:
    async with aclosing(sink):
        return [record.id async for record in sink.list()]


def _items(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i} for i in ids]


async def test_offset_paging_goes_on_after_a_capped_page_until_the_total() -> None:
    rows = _items(*range(5))

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        return httpx.Response(200, json={"rows": rows[offset : offset + 2], "total": 5})

    sink = _mock(handler, items_path="/rows", paging="offset", total_path="/total", page_size=3)
    assert await _list(sink) == ["0", "1", "2", "3", "4"]  # asked 3, got 2: offsets 0, 2, 4


@pytest.mark.parametrize(
    ("paging_settings", "body", "fragment"),
    [
        ({"paging": "offset"}, {"items": _items(1, 2), "total": 9}, "same page twice"),
        ({"paging": "page"}, {"items": _items(1, 2), "total": 9}, "same page twice"),
        ({"paging": "page"}, {"items": _items(1), "total": 9}, "caps the page size"),
        ({"paging": "offset"}, {"items": [], "total": 9}, "0 of the 9 objects"),
        ({"paging": "offset"}, {"items": []}, "no total count"),
    ],
)
async def test_a_listing_that_cannot_be_completed_raises(
    paging_settings: dict[str, Any], body: dict[str, Any], fragment: str
) -> None:
    sink = _mock(
        lambda _: httpx.Response(200, json=body), total_path="/total", page_size=2,
        **paging_settings,
    )  # fmt: skip
    with pytest.raises(SinkPermanentError, match=fragment):
        await _list(sink)


async def test_a_listing_longer_than_max_pages_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "MAX_PAGES", 3)

    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("cursor", "0"))
        return httpx.Response(200, json={"items": _items(n), "next": str(n + 1)})

    with pytest.raises(SinkPermanentError, match="more than 3 pages"):
        await _list(_mock(handler))


@pytest.mark.parametrize(
    ("link", "fragment"),
    [
        ("<https://evil.example.net/x>; rel=next", "another origin"),
        ("<?p=1>; rel=next", "repeated"),
    ],
)
async def test_link_headers_stay_on_the_origin_and_never_loop(link: str, fragment: str) -> None:
    calls: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url)
        n = len(calls)
        return httpx.Response(200, json=_items(n), headers={"Link": link})

    with pytest.raises(SinkPermanentError, match=fragment):
        await _list(_mock(handler, items_path="", paging="link_header"))
    assert all(url.host == "crm.example.com" for url in calls)


async def test_list_params_go_with_every_page_and_find() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"data": [{"id": 1, "email": "a@x"}]})

    sink = _mock(handler, items_path="/data", paging="none", list_params={"meta": "x"})
    async with aclosing(sink):
        assert [r.id async for r in sink.list()] == ["1"]
        assert (await sink.find({"email": "a@x"})) is not None
        with pytest.raises(SinkPermanentError, match="list_params"):
            await sink.find({"meta": "y"})
    assert [str(url.params) for url in seen] == ["meta=x", "email=a%40x&meta=x"]


# -- JSON Pointers and the settings ---------------------------------------------------


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", {"a/b": {"m~n": [10, 20]}, "": 1}),
        ("/a~1b/m~0n/1", 20),
        ("/", 1),
        ("/a~1b/m~0n/01", MISSING),
        ("/a~1b/m~0n/2", MISSING),
        ("/missing", MISSING),
        ("/a~1b/m~0n/0/deeper", MISSING),
    ],
)
def test_json_pointers_resolve_as_rfc_6901_says(pointer: str, expected: Any) -> None:
    assert resolve({"a/b": {"m~n": [10, 20]}, "": 1}, pointer) == expected


@pytest.mark.parametrize("bad", ["items", "/a~2", "/~"])
def test_malformed_pointers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_pointer(bad)
    with pytest.raises(ValidationError):
        _settings(items_path=bad)


def test_defaults_keep_the_reference_api_shape() -> None:
    s = _settings()
    assert (s.items_path, s.object_path, s.next_path, s.paging) == ("/items", "", "/next", "cursor")
    assert (s.version_source, s.after_write, s.list_params) == ("field", "read_back", {})
    assert (s.total_path, s.total_header, s.offset_param, s.page_param, s.first_page) == (
        None, None, "offset", "page", 1,
    )  # fmt: skip


def test_dotted_items_field_and_next_field_become_pointers() -> None:
    s = _settings(items_field="data.rows", next_field="paging.after")
    assert (s.items_path, s.next_path) == ("/data/rows", "/paging/after")
    with pytest.raises(ValidationError, match="set items_path only"):
        _settings(items_field="rows", items_path="/rows")


def test_json_server_and_directus_are_expressible() -> None:
    json_server = _settings(
        items_path="", paging="page", page_param="_page", limit_param="_limit",
        total_header="X-Total-Count", version_source="none",
    )  # fmt: skip
    directus = _settings(
        items_path="/data", object_path="/data", paging="offset",
        list_params={"meta": "total_count"}, total_path="/meta/total_count",
    )  # fmt: skip
    assert json_server.paging == "page" and directus.total_path == "/meta/total_count"


@pytest.mark.parametrize(
    ("paging_settings", "fragment"),
    [
        ({"paging": "link_header", "total_header": "X-Total-Count"}, "ended after 2 of the 7"),
        ({"paging": "cursor", "total_header": "X-Total-Count"}, "ended after 2 of the 7"),
    ],
)
async def test_a_link_or_cursor_listing_that_ends_below_its_total_raises(
    paging_settings: dict[str, Any], fragment: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:  # no Link, no next: one page
        return httpx.Response(200, json={"items": _items(1, 2)}, headers={"X-Total-Count": "7"})

    with pytest.raises(SinkPermanentError, match=fragment):
        await _list(_mock(handler, **paging_settings))


async def test_a_natural_key_lookup_uses_the_filter_param() -> None:
    asked: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(dict(request.url.params))
        return httpx.Response(200, json={"data": [{"id": 7, "email": "a@x.org"}]})

    sink = _mock(handler, items_path="/data", filter_param="filter[{field}][_eq]",
                 paging="offset", list_params={"meta": "total_count"})  # fmt: skip
    async with aclosing(sink):
        found = await sink.find({"email": "a@x.org"})
    assert found is not None and found.id == "7"
    assert asked == [{"filter[email][_eq]": "a@x.org", "meta": "total_count", "limit": "2"}]


def test_the_filter_param_must_name_the_field() -> None:
    with pytest.raises(ValidationError, match="must name the field"):
        _settings(filter_param="q")
