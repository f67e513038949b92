"""The reference API over real HTTP: records, rowId, If-Match, paging, filters, auth, admin."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cdcsync.refapi import FaultSpec, RefApi, Store, run_in_thread, serve
from cdcsync.refapi.__main__ import main as refapi_main
from cdcsync.refapi.store import InvalidCursorError
from cdcsync.testing.answers import json_of

TOKEN = "refapi-test-token"
CONTACTS = "/api/v1/contacts"


@pytest.fixture
async def api() -> AsyncIterator[RefApi]:
    async with serve(port=0) as server:
        yield server


async def _create(client: httpx.AsyncClient, **fields: object) -> dict[str, Any]:
    return json_of(await client.post(CONTACTS, json=fields), 201)


# -- records ---------------------------------------------------------------


async def test_create_assigns_id_and_row_id_and_ignores_client_values(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(CONTACTS, json={"email": "a@x.io", "id": "mine", "rowId": "v0"})
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "mine" and body["rowId"] != "v0"
    assert body == {"id": body["id"], "rowId": body["rowId"], "email": "a@x.io"}
    assert response.headers["Location"] == f"{CONTACTS}/{body['id']}"
    assert response.headers["ETag"] == f'"{body["rowId"]}"'
    fetched = await client.get(f"{CONTACTS}/{body['id']}")
    assert fetched.status_code == 200 and fetched.json() == body


async def test_get_unknown_id_or_collection_is_404(client: httpx.AsyncClient) -> None:
    created = await _create(client, email="a@x.io")
    assert (await client.get(f"{CONTACTS}/nope")).status_code == 404
    missing = await client.get(f"/api/v1/cases/{created['id']}")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


async def test_put_replaces_fields_and_changes_row_id_every_time(client: httpx.AsyncClient) -> None:
    created = await _create(client, email="a@x.io", phone="1")
    url = f"{CONTACTS}/{created['id']}"
    first = (await client.put(url, json={"email": "a@x.io"})).json()
    second = (await client.put(url, json={"email": "a@x.io"})).json()
    assert first == {"id": created["id"], "rowId": first["rowId"], "email": "a@x.io"}
    assert len({created["rowId"], first["rowId"], second["rowId"]}) == 3
    assert (await client.put(f"{CONTACTS}/nope", json={})).status_code == 404


async def test_patch_merges_fields_and_honours_if_match(client: httpx.AsyncClient) -> None:
    created = await _create(client, email="a@x.io", phone="1")
    url = f"{CONTACTS}/{created['id']}"
    merged = (await client.patch(url, json={"tags": ["vip"]})).json()
    assert merged == {
        "id": created["id"], "rowId": merged["rowId"], "email": "a@x.io", "phone": "1",
        "tags": ["vip"],
    }  # fmt: skip
    assert merged["rowId"] != created["rowId"]
    stale = await client.patch(url, json={"phone": "2"}, headers={"If-Match": created["rowId"]})
    assert stale.status_code == 412 and (await client.get(url)).json()["phone"] == "1"


async def test_row_ids_are_opaque_and_never_repeat() -> None:
    store = Store()
    ids = {store.create("c", {"n": i})["rowId"] for i in range(200)}
    assert len(ids) == 200
    assert all(len(row_id) == 16 and int(row_id, 16) >= 0 for row_id in ids)


async def test_if_match_guards_put_and_delete(client: httpx.AsyncClient) -> None:
    created = await _create(client, email="a@x.io")
    url, stale = f"{CONTACTS}/{created['id']}", created["rowId"]
    fresh = (await client.put(url, json={"email": "b@x.io"}, headers={"If-Match": stale})).json()
    refused = await client.put(url, json={"email": "c@x.io"}, headers={"If-Match": f'"{stale}"'})
    assert refused.status_code == 412
    assert refused.headers["ETag"] == f'"{fresh["rowId"]}"'
    assert (await client.get(url)).json()["email"] == "b@x.io"
    assert (await client.delete(url, headers={"If-Match": stale})).status_code == 412
    assert (
        await client.delete(url, headers={"If-Match": f'"{fresh["rowId"]}"'})
    ).status_code == 204


async def test_delete_then_delete_again_is_404(client: httpx.AsyncClient) -> None:
    created = await _create(client, email="a@x.io")
    url = f"{CONTACTS}/{created['id']}"
    assert (await client.delete(url)).status_code == 204
    assert (await client.delete(url)).status_code == 404
    assert (await client.get(url)).status_code == 404


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'"text"', b"\xff"])
async def test_bodies_that_are_not_json_objects_are_400(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(CONTACTS, content=content)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


# -- paging and filters ----------------------------------------------------


async def test_paging_is_stable_across_writes_between_pages(client: httpx.AsyncClient) -> None:
    created = [await _create(client, n=i) for i in range(7)]
    first = (await client.get(CONTACTS, params={"limit": 3})).json()
    assert [item["id"] for item in first["items"]] == [c["id"] for c in created[:3]]
    # a delete before the cursor and a create after it do not shift the next page
    await client.delete(f"{CONTACTS}/{created[0]['id']}")
    late = await _create(client, n=7)
    seen = [item["id"] for item in first["items"]]
    cursor = first["next"]
    while cursor is not None:
        page = (await client.get(CONTACTS, params={"limit": 3, "cursor": cursor})).json()
        assert 0 < len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        cursor = page["next"]
    assert seen == [c["id"] for c in created] + [late["id"]]


async def test_last_page_has_null_next_and_empty_collection_lists_nothing(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/v1/empty")).json() == {"items": [], "next": None}
    for i in range(3):
        await _create(client, n=i)
    page = (await client.get(CONTACTS, params={"limit": 3})).json()
    assert len(page["items"]) == 3 and page["next"] is None


@pytest.mark.parametrize(
    "params",
    [{"limit": "x"}, {"limit": "0"}, {"limit": "1001"}, {"cursor": "bogus"}, {"cursor": "eDE"}],
)
async def test_bad_limit_or_cursor_is_400(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get(CONTACTS, params=params)
    assert response.status_code == 400


def test_store_rejects_cursors_it_did_not_issue() -> None:
    with pytest.raises(InvalidCursorError):
        Store().page("c", limit=10, cursor="eDE")  # base64 of "x1"


async def test_equality_filters_find_records_by_natural_key(client: httpx.AsyncClient) -> None:
    a = await _create(client, email="a@x.io", age=30, vip=True, note=None)
    b = await _create(client, email="b@x.io", age=31, vip=False)

    async def ids(**params: str) -> list[object]:
        body = (await client.get(CONTACTS, params=params)).json()
        return [item["id"] for item in body["items"]]

    assert await ids(email="b@x.io") == [b["id"]]
    assert await ids(age="30") == [a["id"]]
    assert await ids(vip="false") == [b["id"]]
    assert await ids(note="null") == [a["id"]]
    assert await ids(email="a@x.io", age="31") == []
    assert await ids(unknown_field="x") == []


async def test_filtered_paging_follows_cursors(client: httpx.AsyncClient) -> None:
    wanted = [(await _create(client, team="red", n=i))["id"] for i in range(5)]
    for i in range(5):
        await _create(client, team="blue", n=i)
    page = (await client.get(CONTACTS, params={"team": "red", "limit": 2})).json()
    seen = [item["id"] for item in page["items"]]
    while page["next"]:
        params = {"team": "red", "limit": 2, "cursor": page["next"]}
        page = (await client.get(CONTACTS, params=params)).json()
        seen += [item["id"] for item in page["items"]]
    assert seen == wanted


# -- auth ------------------------------------------------------------------


async def test_token_is_required_on_api_paths_only() -> None:
    async with serve(token=TOKEN) as api, httpx.AsyncClient(base_url=api.url) as http:
        missing = await http.get(CONTACTS)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await http.get(CONTACTS, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        basic = await http.get(CONTACTS, headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401
        ok = await http.get(CONTACTS, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert (await http.get("/_admin/stats")).status_code == 200
        assert api.stats()["requests"]["by_status"] == {"401": 3, "200": 1}


# -- admin: stats, reset, faults, latency ------------------------------------


async def test_stats_count_requests_by_method_kind_operation_and_status(
    client: httpx.AsyncClient,
) -> None:
    created = await _create(client, email="a@x.io")
    await client.get(f"{CONTACTS}/{created['id']}")
    await client.get(CONTACTS)
    await client.put(f"{CONTACTS}/{created['id']}", json={})
    await client.delete(f"{CONTACTS}/nope")
    await _create(client, email="b@x.io")
    stats = (await client.get("/_admin/stats")).json()
    assert stats["requests"] == {
        "total": 6,
        "by_method": {"POST": 2, "GET": 2, "PUT": 1, "DELETE": 1},
        "by_kind": {"collection": 3, "item": 3},
        "by_operation": {"create": 2, "get": 1, "list": 1, "replace": 1, "delete": 1},
        "by_status": {"201": 2, "200": 3, "404": 1},
        "bulk_operations": {},
    }
    assert stats["records"] == {"contacts": 2}


async def test_reset_drops_records_faults_and_counters(client: httpx.AsyncClient) -> None:
    await _create(client, email="a@x.io")
    await client.post("/_admin/faults", json={"status": 503, "count": 5})
    assert (await client.post("/_admin/reset")).status_code == 204
    stats = (await client.get("/_admin/stats")).json()
    assert stats["records"] == {} and stats["requests"]["total"] == 0
    assert stats["faults"] == {"fired": 0, "pending": []}
    assert (await client.get(CONTACTS)).status_code == 200


async def test_fault_fails_the_next_n_matching_requests_only(client: httpx.AsyncClient) -> None:
    armed = await client.post(
        "/_admin/faults", json={"status": 503, "count": 2, "path": CONTACTS, "method": "post"}
    )
    assert armed.status_code == 201
    assert (await client.get(CONTACTS)).status_code == 200  # other method: untouched
    assert (await client.post("/api/v1/cases", json={})).status_code == 201  # other path
    statuses = [(await client.post(CONTACTS, json={"n": i})).status_code for i in range(3)]
    assert statuses == [503, 503, 201]
    stats = (await client.get("/_admin/stats")).json()
    assert stats["records"] == {"cases": 1, "contacts": 1}
    assert stats["faults"] == {"fired": 2, "pending": []}


async def test_fault_path_matches_items_below_it(client: httpx.AsyncClient) -> None:
    await client.post("/_admin/faults", json={"status": 500, "path": CONTACTS + "/"})
    assert (await client.get(f"{CONTACTS}/abc")).status_code == 500
    assert (await client.get(f"{CONTACTS}/abc")).status_code == 404


async def test_429_carries_retry_after(client: httpx.AsyncClient) -> None:
    await client.post("/_admin/faults", json={"status": 429})
    await client.post("/_admin/faults", json={"status": 429, "retry_after": 7})
    date = "Wed, 21 Oct 2037 07:28:00 GMT"
    await client.post("/_admin/faults", json={"status": 503, "retry_after": date})
    responses = [await client.get(CONTACTS) for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 503, 200]
    assert [r.headers.get("Retry-After") for r in responses] == ["1", "7", date, None]


async def test_fault_with_body_and_unlimited_count(client: httpx.AsyncClient) -> None:
    await client.post("/_admin/faults", json={"status": 200, "body": "<html>", "count": None})
    for _ in range(3):
        response = await client.get(CONTACTS)
        assert response.status_code == 200 and response.text == "<html>"
    assert len((await client.get("/_admin/faults")).json()["pending"]) == 1
    assert (await client.delete("/_admin/faults")).status_code == 204
    assert (await client.get(CONTACTS)).json() == {"items": [], "next": None}


@pytest.mark.parametrize("kind", ["reset", "truncate", "garbage"])
async def test_connection_fault_breaks_the_exchange_unserved(
    api: RefApi, client: httpx.AsyncClient, kind: str
) -> None:
    await client.post("/_admin/faults", json={"connection": kind, "method": "POST"})
    with pytest.raises(httpx.RemoteProtocolError):  # httpcore: no complete HTTP answer
        await client.post(CONTACTS, json={"email": "a@x.io"})
    assert api.store.counts() == {}  # not served
    assert (await client.post(CONTACTS, json={"email": "a@x.io"})).status_code == 201
    stats = (await client.get("/_admin/stats")).json()
    assert stats["faults"] == {"fired": 1, "pending": []} and stats["records"] == {"contacts": 1}


async def test_lost_answer_serves_the_write_then_breaks_the_connection(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    await client.post("/_admin/faults", json={"connection": "lost_answer", "method": "POST"})
    with pytest.raises(httpx.RemoteProtocolError):  # the client never sees its answer
        await client.post(CONTACTS, json={"email": "a@x.io"})
    assert api.store.counts() == {"contacts": 1}  # but the write landed
    assert (await client.post(CONTACTS, json={"email": "b@x.io"})).status_code == 201


async def test_a_rate_hits_that_share_of_requests_the_same_way_each_run(
    client: httpx.AsyncClient,
) -> None:
    async def statuses() -> list[int]:
        await client.post("/_admin/reset")
        await client.post("/_admin/faults", json={"status": 503, "count": None, "rate": 0.1})
        return [(await client.get(CONTACTS)).status_code for _ in range(400)]

    first = await statuses()
    assert 20 <= first.count(503) <= 60 and first.count(200) == 400 - first.count(503)
    assert await statuses() == first  # seeded: a run repeats


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"status": 99},
        {"status": 503, "count": 0},
        {"status": 503, "path": "api"},
        {"x": 1},
        {"connection": "explode"},
        {"connection": "reset", "status": 503},
        {"status": 503, "rate": 0},
        {"status": 503, "rate": 1.5},
    ],
)
async def test_invalid_fault_is_400(client: httpx.AsyncClient, spec: dict[str, object]) -> None:
    response = await client.post("/_admin/faults", json=spec)
    assert response.status_code == 400, response.text


async def test_fault_latency_and_global_latency_delay_api_requests(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    api.inject_fault(FaultSpec(latency_ms=150))
    started = time.perf_counter()
    assert (await client.get(CONTACTS)).status_code == 200
    assert time.perf_counter() - started >= 0.15
    assert (await client.put("/_admin/settings", json={"latency_ms": 100})).json() == {
        "latency_ms": 100
    }
    started = time.perf_counter()
    await client.get(CONTACTS)
    assert time.perf_counter() - started >= 0.1
    started = time.perf_counter()
    await client.get("/_admin/stats")  # admin paths are never slowed
    assert time.perf_counter() - started < 0.1
    bad = await client.put("/_admin/settings", json={"latency_ms": -1})
    assert bad.status_code == 400


async def test_ui_page_shows_the_record_escaped(client: httpx.AsyncClient) -> None:
    created = await _create(client, name="<script>")
    page = await client.get(f"/ui/contacts/{created['id']}")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "&lt;script&gt;" in page.text and "<script>" not in page.text


# -- ways to run it ----------------------------------------------------------


def test_run_in_thread_serves_sync_clients_and_stops() -> None:
    with run_in_thread(token=TOKEN) as server:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        created = httpx.post(f"{server.url}{CONTACTS}", json={"n": 1}, headers=headers)
        assert created.status_code == 201
        assert server.call(lambda api: api.stats()["records"]) == {"contacts": 1}
        server.call(lambda api: api.reset())
        assert httpx.get(f"{server.url}/_admin/stats").json()["records"] == {}
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_admin/stats")
    server.stop()  # idempotent


def test_run_in_thread_reports_a_port_in_use() -> None:
    with run_in_thread() as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="failed to start"):
            run_in_thread(port=port)


def test_main_refuses_a_missing_token_variable(capsys: pytest.CaptureFixture[str]) -> None:
    variable = "CDCSYNC_TEST_UNSET_TOKEN"
    assert variable not in os.environ
    assert refapi_main(["--port", "0", "--token-env", variable]) == 2
    assert variable in capsys.readouterr().err


async def test_python_dash_m_serves_with_the_token_from_the_environment() -> None:
    env = {**os.environ, "REFAPI_TEST_TOKEN": TOKEN}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdcsync.refapi", "--port", "0",
        "--token-env", "REFAPI_TEST_TOKEN", "--latency-ms", "5", "--log-level", "WARNING",
        stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode()
        url = line.split()[3]
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get(CONTACTS)).status_code == 401
            ok = await http.get(CONTACTS, headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200
            assert (await http.get("/_admin/settings")).json() == {"latency_ms": 5}
    finally:
        proc.terminate()
        await proc.wait()


# -- bulk writes -------------------------------------------------------------------------


async def test_bulk_applies_each_operation_on_its_own_in_order(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    ada = await _create(client, email="ada@x.io", name="Ada")
    bob = await _create(client, email="bob@x.io", name="Bob")
    operations = [
        {"op": "create", "fields": {"email": "cy@x.io"}},
        {"op": "replace", "id": ada["id"], "rowId": ada["rowId"], "fields": {"email": "a@x.io"}},
        {"op": "merge", "id": bob["id"], "fields": {"name": "Robert"}},
        {"op": "replace", "id": ada["id"], "rowId": ada["rowId"], "fields": {"email": "stale"}},
        {"op": "delete", "id": "nope"},
        {"op": "launch", "id": bob["id"]},
        {"op": "delete", "id": bob["id"]},
    ]
    response = await client.post(f"{CONTACTS}/_bulk", json={"operations": operations})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 200, 200, 412, 404, 400, 204]
    assert results[0]["item"]["email"] == "cy@x.io" and results[0]["item"]["rowId"]
    assert results[1]["item"]["rowId"] != ada["rowId"]  # a new version
    assert results[2]["item"] == {**results[2]["item"], "email": "bob@x.io", "name": "Robert"}
    assert results[3]["error"] == "precondition_failed"  # the earlier replace moved the rowId
    assert results[5]["error"] == "bad_request" and "op must be" in results[5]["message"]
    assert sorted(r["email"] for r in api.store.page("contacts", limit=10).items) == [
        "a@x.io", "cy@x.io"
    ]  # fmt: skip
    stats = api.stats()["requests"]
    assert stats["by_operation"]["bulk"] == 1 and stats["by_kind"]["bulk"] == 1
    assert stats["bulk_operations"] == {"create": 1, "replace": 2, "merge": 1, "delete": 2}


@pytest.mark.parametrize(
    "body", [{}, {"operations": []}, {"operations": {}}, {"operations": [{}] * 1001}, {"ops": []}]
)
async def test_a_malformed_bulk_request_is_400(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await client.post(f"{CONTACTS}/_bulk", json=body)
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


async def test_a_fault_armed_on_an_item_fails_its_bulk_operation_alone(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    ada, bob = await _create(client, email="ada@x.io"), await _create(client, email="bob@x.io")
    await client.post("/_admin/faults", json={"connection": "reset", "method": "PUT"})
    await client.post("/_admin/faults", json={"status": 503, "method": "PUT",
                                              "path": f"{CONTACTS}/{ada['id']}"})  # fmt: skip
    operations = [
        {"op": "replace", "id": ada["id"], "fields": {"email": "a@x.io"}},
        {"op": "replace", "id": bob["id"], "fields": {"email": "b@x.io"}},
    ]
    response = await client.post(f"{CONTACTS}/_bulk", json={"operations": operations})
    results = response.json()["results"]
    assert [r["status"] for r in results] == [503, 200], results
    assert results[0]["error"] == "injected_fault"
    assert api.store.get("contacts", ada["id"])["email"] == "ada@x.io"  # not applied
    pending = (await client.get("/_admin/faults")).json()["pending"]
    assert [p.get("connection") for p in pending] == ["reset"]  # no operation can take it
