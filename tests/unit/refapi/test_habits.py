"""The reference API's switchable habits of other APIs, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cdcsync.refapi import RefApi, serve
from cdcsync.testing.answers import json_of

CONTACTS = "/api/v1/contacts"


@pytest.fixture
async def api() -> AsyncIterator[RefApi]:
    async with serve(port=0, habits={"envelope": "bare"}) as server:
        yield server


async def _habits(client: httpx.AsyncClient, **habits: Any) -> dict[str, Any]:
    return json_of(await client.put("/_admin/settings", json={"habits": habits}))


async def test_habits_come_from_the_constructor_and_the_admin_settings(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/_admin/settings")).json() == {
        "latency_ms": 0, "habits": {"envelope": "bare"},
    }  # fmt: skip
    assert (await _habits(client, envelope="items"))["latency_ms"] == 0
    assert (await client.get("/_admin/settings")).json() == {"latency_ms": 0}
    for bad in ({"habits": {"envelope": "xml"}}, {"habits": ["bare"]}):
        assert (await client.put("/_admin/settings", json=bad)).status_code == 400


async def test_page_paging_with_total_and_link_headers(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    await _habits(client, paging="page", total_header=True, link_header=True)
    for i in range(5):
        api.store.create("contacts", {"n": i})
    second = await client.get(CONTACTS, params={"page": 2, "size": 2})
    assert [item["n"] for item in second.json()] == [2, 3]
    assert second.headers["X-Total-Count"] == "5"
    assert set(second.links) == {"first", "next", "prev"}
    assert "page=3" in second.links["next"]["url"] and api.url in second.links["next"]["url"]
    last = await client.get(CONTACTS, params={"page": 3, "size": 2})
    assert "next" not in last.links and len(last.json()) == 1
    assert (await client.get(CONTACTS, params={"page": 0})).status_code == 400


async def test_directus_envelope_and_offset_paging(api: RefApi, client: httpx.AsyncClient) -> None:
    await _habits(client, envelope="data", paging="offset")
    created = (await client.post(CONTACTS, json={"email": "a@x.org"})).json()["data"]
    api.store.create("contacts", {"email": "b@x.org"})
    page = await client.get(CONTACTS, params={"limit": 1, "offset": 1, "meta": "total_count"})
    assert page.json() == {
        "data": [api.store.matching("contacts")[1]], "meta": {"total_count": 2},
    }  # fmt: skip
    assert "meta" not in (await client.get(CONTACTS)).json()
    fetched = await client.get(f"{CONTACTS}/{created['id']}")
    assert fetched.json() == {"data": created}


async def test_drf_pages_link_both_ways(api: RefApi, client: httpx.AsyncClient) -> None:
    await _habits(client, envelope="drf", paging="offset")
    for i in range(3):
        api.store.create("contacts", {"n": i})
    body = (await client.get(CONTACTS, params={"limit": 1, "offset": 1})).json()
    assert body["count"] == 3 and [r["n"] for r in body["results"]] == [1]
    assert body["next"].startswith(api.url) and "offset=2" in body["next"]
    assert "offset=0" in body["previous"]


async def test_write_answers_versions_and_etags(api: RefApi, client: httpx.AsyncClient) -> None:
    await _habits(client, envelope="items", create_answer="location", update_answer="empty")
    created = await client.post(CONTACTS, json={"email": "a@x.org"})
    assert created.status_code == 201 and created.content == b""
    location = created.headers["Location"]
    assert (await client.put(location, json={"email": "b@x.org"})).status_code == 204
    assert (await client.patch(location, json={"email": "c@x.org"})).status_code == 204
    await _habits(client, create_answer="id", versions=False, etag=False)
    made = await client.post(CONTACTS, json={"email": "d@x.org"})
    assert set(made.json()) == {"id"}
    got = await client.get(f"{CONTACTS}/{made.json()['id']}")
    assert "rowId" not in got.json() and "ETag" not in got.headers
