"""The reference API's write and auth habits over real HTTP: query, basic and OAuth2 auth,
If-Match ignored, merge patches, PUT-to-create, bulk results naming their ids."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cdcsync.refapi import RefApi, serve
from cdcsync.refapi.write_habits import merge_patch

TOKEN = "refapi-habits-token"
CONTACTS = "/api/v1/contacts"


@pytest.fixture
async def api() -> AsyncIterator[RefApi]:
    async with serve(port=0, token=TOKEN) as server:
        yield server


def _basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def _create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post(CONTACTS, json=fields, headers=BEARER)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# -- auth ----------------------------------------------------------------------------------


async def test_query_auth_takes_the_key_and_never_filters_on_it(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    await _create(client, email="a@x.io")
    put = await client.put("/_admin/write-habits", json={"auth": "query"})
    assert put.json()["auth"] == "query"
    assert (await client.get(CONTACTS, headers=BEARER)).status_code == 401
    listed = await client.get(CONTACTS, params={"api_key": TOKEN})
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1
    assert (await client.get(CONTACTS, params={"api_key": "nope"})).status_code == 401


async def test_basic_auth_takes_the_user_and_the_token_as_password(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    api.writes.switch(auth="basic", basic_user="sync")
    assert (await client.get(CONTACTS, headers=_basic("sync", TOKEN))).status_code == 200
    refused = await client.get(CONTACTS, headers=_basic("other", TOKEN))
    assert refused.status_code == 401 and "Basic" in refused.headers["WWW-Authenticate"]
    assert (await client.get(CONTACTS, headers=BEARER)).status_code == 401


async def test_oauth2_issues_short_lived_tokens_to_the_client_and_counts_them(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    api.writes.switch(auth="oauth2", token_ttl_s=60)
    form = {"grant_type": "client_credentials", "client_id": "cdcsync", "client_secret": TOKEN}
    issued = await client.post("/oauth/token", data=form)
    assert issued.status_code == 200 and issued.headers["Cache-Control"] == "no-store"
    body = issued.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 60
    by_basic = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic("cdcsync", TOKEN)
    )
    assert by_basic.status_code == 200
    access = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await client.get(CONTACTS, headers=access)).status_code == 200
    assert (await client.get(CONTACTS, headers=BEARER)).status_code == 401  # not a token it issued
    assert api.stats()["oauth"] == {"tokens_issued": 2, "tokens_active": 2}
    assert (await client.post("/_admin/oauth/revoke")).json() == {"revoked": 2}
    assert (await client.get(CONTACTS, headers=access)).status_code == 401
    api.reset()
    assert api.stats()["oauth"]["tokens_issued"] == 0 and api.writes.habits.auth == "oauth2"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password", "client_id": "cdcsync", "client_secret": TOKEN}, 400,
         "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "client_id": "cdcsync", "client_secret": "x"}, 401,
         "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "other", "client_secret": TOKEN}, 401,
         "invalid_client"),
    ],
)  # fmt: skip
async def test_a_bad_token_request_is_an_oauth_error(
    client: httpx.AsyncClient, form: dict[str, str], status: int, error: str
) -> None:
    response = await client.post("/oauth/token", data=form)
    assert response.status_code == status and response.json()["error"] == error


# -- writes ----------------------------------------------------------------------------------


async def test_ignoring_if_match_overwrites_whatever_is_there(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    ada = await _create(client, email="a@x.io")
    url, stale = f"{CONTACTS}/{ada['id']}", {**BEARER, "If-Match": '"stale"'}
    assert (await client.put(url, json={"email": "b@x.io"}, headers=stale)).status_code == 412
    api.writes.switch(if_match="ignore")
    assert (await client.put(url, json={"email": "b@x.io"}, headers=stale)).status_code == 200
    assert (await client.patch(url, json={"n": 1}, headers=stale)).status_code == 200
    bulk = [{"op": "merge", "id": ada["id"], "rowId": "stale", "fields": {"n": 2}}]
    results = (
        await client.post(f"{CONTACTS}/_bulk", json={"operations": bulk}, headers=BEARER)
    ).json()["results"]
    assert results[0]["status"] == 200
    assert (await client.delete(url, headers=stale)).status_code == 204


async def test_merge_patch_wants_its_media_type_and_removes_nulls(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    ada = await _create(client, email="a@x.io", name="Ada", address={"city": "L", "zip": "1"})
    url = f"{CONTACTS}/{ada['id']}"
    api.writes.switch(patch="merge-patch")
    refused = await client.patch(url, json={"name": "A"}, headers=BEARER)
    assert refused.status_code == 415 and refused.json()["error"] == "unsupported_media_type"
    headers = {**BEARER, "Content-Type": "application/merge-patch+json"}
    patch = b'{"name": null, "address": {"zip": "2"}}'
    patched = await client.patch(url, content=patch, headers=headers)
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body == {"id": ada["id"], "rowId": body["rowId"], "email": "a@x.io",
                    "address": {"city": "L", "zip": "2"}}  # fmt: skip


def test_merge_patch_follows_rfc_7396() -> None:
    assert merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}}) == {
        "a": "z", "c": {"d": "e"}
    }  # fmt: skip
    assert merge_patch({"a": [1]}, {"a": [2]}) == {"a": [2]}
    assert merge_patch("x", {"a": None}) == {}


async def test_put_to_a_missing_id_creates_it_when_switched_on(
    api: RefApi, client: httpx.AsyncClient
) -> None:
    url = f"{CONTACTS}/C-1"
    assert (await client.put(url, json={"email": "a@x.io"}, headers=BEARER)).status_code == 404
    api.writes.switch(put_create=True)
    guarded = {**BEARER, "If-Match": '"r"'}
    assert (await client.put(url, json={"email": "a@x.io"}, headers=guarded)).status_code == 404
    created = await client.put(url, json={"email": "a@x.io"}, headers=BEARER)
    assert created.status_code == 201 and created.json()["id"] == "C-1"
    assert created.headers["Location"] == url
    replaced = await client.put(url, json={"email": "b@x.io"}, headers=BEARER)
    assert replaced.status_code == 200 and replaced.json()["email"] == "b@x.io"


async def test_bulk_results_name_their_op_and_id_and_creates_take_a_client_id(
    client: httpx.AsyncClient,
) -> None:
    ada = await _create(client, email="a@x.io")
    operations = [
        {"op": "create", "fields": {"email": "n@x.io"}},
        {"op": "create", "id": "K1", "fields": {"email": "k@x.io"}},
        {"op": "create", "id": "K1", "fields": {"email": "k2@x.io"}},
        {"op": "delete", "id": ada["id"]},
        {"op": "delete", "id": "nope"},
    ]
    response = await client.post(
        f"{CONTACTS}/_bulk", json={"operations": operations}, headers=BEARER
    )
    results = response.json()["results"]
    assert [(r["op"], r["status"]) for r in results] == [
        ("create", 201), ("create", 201), ("create", 200), ("delete", 204), ("delete", 404)
    ]  # fmt: skip
    assert results[0]["id"] == results[0]["item"]["id"]
    assert [r["id"] for r in results[1:]] == ["K1", "K1", ada["id"], "nope"]
    assert results[2]["item"]["email"] == "k2@x.io"


async def test_the_admin_endpoint_validates_write_habits(client: httpx.AsyncClient) -> None:
    refused = await client.put("/_admin/write-habits", json={"auth": "kerberos"})
    assert refused.status_code == 400 and "auth" in refused.json()["message"]
    shown = (await client.get("/_admin/write-habits")).json()
    assert shown["auth"] == "bearer" and shown["if_match"] == "honour"
