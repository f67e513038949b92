"""The rest provider's answer, envelope, paging and version settings against the reference API
taking on other APIs' habits (bare arrays, Directus, DRF, offset/page/Link paging, 204s...)."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import pytest

from cdcsync.errors import SinkError, SinkPermanentError, SinkTransientError
from cdcsync.refapi import RefApi
from cdcsync.sinks.base import ExternalRecord
from cdcsync.sinks.providers.rest import RestSettings, RestSink

TOKEN = "habits-test-token"
PATH = "/api/v1/contacts"
#: The reference API's page+size paging, the way json-server's _page/_limit is configured.
PAGED = {"paging": "page", "page_param": "page", "limit_param": "size"}
#: Directus: {"data": ...} answers, limit/offset paging, the total on request.
DIRECTUS = {
    "items_path": "/data", "object_path": "/data", "paging": "offset",
    "list_params": {"meta": "total_count"}, "total_path": "/meta/total_count",
}  # fmt: skip


@pytest.fixture
def api_token() -> str:
    """The token the reference API (``api``, in conftest.py) accepts."""
    return TOKEN


def _sink(api: RefApi, **overrides: Any) -> RestSink:
    settings = RestSettings(
        base_url=api.url, collection_path=PATH, object_type="contact", token=TOKEN, **overrides
    )
    return RestSink(settings, environ={})


def _habits(api: RefApi, **habits: Any) -> None:
    api.habits = api.habits.changed(habits)


def _calls(api: RefApi, operation: str) -> int:
    count: int = api.stats()["requests"]["by_operation"].get(operation, 0)
    return count


async def _fill(api: RefApi, count: int) -> list[dict[str, Any]]:
    return [api.store.create("contacts", {"n": i}) for i in range(count)]


async def _listed(sink: RestSink) -> list[ExternalRecord]:
    async with aclosing(sink):
        return [record async for record in sink.list()]


# -- listings ----------------------------------------------------------------------


async def test_a_bare_array_with_the_default_items_path_fails_with_the_hint(api: RefApi) -> None:
    _habits(api, envelope="bare")
    with pytest.raises(SinkPermanentError, match='bare array: set items_path to ""'):
        await _listed(_sink(api))


async def test_a_list_elsewhere_names_its_pointer(api: RefApi) -> None:
    _habits(api, envelope="drf")
    with pytest.raises(SinkPermanentError, match='"/results": set items_path'):
        await _listed(_sink(api))


@pytest.mark.parametrize("count", [7, 6, 0])
async def test_bare_pages_with_x_total_count_read_every_page_and_stop_on_the_total(
    api: RefApi, count: int
) -> None:
    _habits(api, envelope="bare", paging="page", total_header=True)
    rows = await _fill(api, count)
    sink = _sink(api, items_path="", total_header="X-Total-Count", page_size=3, **PAGED)
    listed = await _listed(sink)
    assert [r.id for r in listed] == [row["id"] for row in rows]
    assert _calls(api, "list") == max(1, -(-count // 3))  # 6 of 6: no extra empty page


async def test_pages_without_a_total_stop_on_a_short_page(api: RefApi) -> None:
    _habits(api, envelope="bare", paging="page")
    await _fill(api, 6)
    assert len(await _listed(_sink(api, items_path="", page_size=3, **PAGED))) == 6
    assert _calls(api, "list") == 3  # 3, 3, then 0


async def test_link_header_paging_follows_rel_next(api: RefApi) -> None:
    _habits(api, envelope="bare", link_header=True)
    rows = await _fill(api, 7)
    listed = await _listed(_sink(api, items_path="", paging="link_header", page_size=3))
    assert [r.id for r in listed] == [row["id"] for row in rows]
    assert _calls(api, "list") == 3


async def test_directus_offset_paging_reads_every_page_and_stops_on_the_total(
    api: RefApi,
) -> None:
    _habits(api, envelope="data", paging="offset")
    rows = await _fill(api, 9)
    listed = await _listed(_sink(api, page_size=3, **DIRECTUS))
    assert [r.id for r in listed] == [row["id"] for row in rows]
    assert [r.fields for r in listed] == [{"n": i} for i in range(9)]
    assert _calls(api, "list") == 3


async def test_a_total_the_api_does_not_send_names_list_params(api: RefApi) -> None:
    _habits(api, envelope="data", paging="offset")
    await _fill(api, 2)
    settings = DIRECTUS | {"list_params": {}}
    with pytest.raises(SinkPermanentError, match=r"total_path '/meta/total_count'.*list_params"):
        await _listed(_sink(api, **settings))


async def test_drf_pages_follow_their_absolute_next_links(api: RefApi) -> None:
    _habits(api, envelope="drf", paging="offset")
    rows = await _fill(api, 5)
    listed = await _listed(_sink(api, items_path="/results", page_size=2))
    assert [r.id for r in listed] == [row["id"] for row in rows]
    assert _calls(api, "list") == 3


async def test_paging_none_reads_one_answer(api: RefApi) -> None:
    _habits(api, envelope="bare")
    await _fill(api, 4)
    assert len(await _listed(_sink(api, items_path="", paging="none"))) == 4
    assert _calls(api, "list") == 1


async def test_a_listing_error_mid_way_raises_instead_of_a_partial_listing(api: RefApi) -> None:
    _habits(api, envelope="data", paging="offset")
    await _fill(api, 7)
    seen: list[ExternalRecord] = []
    async with aclosing(_sink(api, page_size=3, **DIRECTUS)) as sink:
        with pytest.raises(SinkTransientError):
            async for record in sink.list():
                seen.append(record)
                if len(seen) == 3:  # the first page is read: the second one fails
                    api.inject_fault(status=503, method="GET", path=PATH)
    assert len(seen) == 3


async def test_find_uses_the_envelope_and_the_list_params(api: RefApi) -> None:
    _habits(api, envelope="data", paging="offset")
    ada = api.store.create("contacts", {"email": "ada@example.com"})
    async with aclosing(_sink(api, **DIRECTUS)) as sink:
        found = await sink.find({"email": "ada@example.com"})
    assert found is not None and found.id == ada["id"] and found.row_id == ada["rowId"]


# -- single objects and versions -----------------------------------------------------


async def test_directus_objects_round_trip_at_object_path(api: RefApi) -> None:
    _habits(api, envelope="data", paging="offset")
    async with aclosing(_sink(api, **DIRECTUS)) as sink:
        created = await sink.create({"email": "ada@example.com"})
        assert await sink.get(created.id) == created
        updated = await sink.update(created.id, {"email": "ada@new.example"})
    assert updated.row_id not in (None, created.row_id)
    assert updated.fields == {"email": "ada@new.example"}


async def test_an_object_in_an_envelope_names_object_path(api: RefApi) -> None:
    _habits(api, envelope="data")
    row = api.store.create("contacts", {"email": "ada@example.com"})
    async with aclosing(_sink(api)) as sink:
        with pytest.raises(SinkPermanentError, match=r'object_path .*"/data"'):
            await sink.get(row["id"])


async def test_versions_from_etags_and_if_match_with_them(api: RefApi) -> None:
    _habits(api, versions=False)
    async with aclosing(_sink(api, version_source="etag")) as sink:
        created = await sink.create({"email": "ada@example.com"})
        assert created.row_id == f'"{api.store.get("contacts", created.id)["rowId"]}"'
        assert (await sink.get(created.id)) == created
        assert (await _listed_one(sink)).row_id is None  # listings carry no ETags
        updated = await sink.update(
            created.id, {"email": "b@x.org"}, expected_row_id=created.row_id
        )
        assert updated.row_id not in (None, created.row_id)
        with pytest.raises(SinkError, match="412"):
            await sink.update(created.id, {"email": "c@x.org"}, expected_row_id=created.row_id)


async def _listed_one(sink: RestSink) -> ExternalRecord:
    (record,) = [record async for record in sink.list()]
    return record


async def test_version_source_none_keeps_row_ids_none_and_never_reads_back(api: RefApi) -> None:
    _habits(api, versions=False, etag=False)
    async with aclosing(_sink(api, version_source="none")) as sink:
        created = await sink.create({"email": "ada@example.com"})
        updated = await sink.update(created.id, {"email": "b@x.org"})
    assert created.row_id is None and updated.row_id is None
    assert updated.fields == {"email": "b@x.org"} and _calls(api, "get") == 0
