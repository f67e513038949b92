"""The access matrix against the aiohttp app Faust builds: every route x method x credential.

The routes are read from the app's router (Faust's own included), so a page
added later is in the matrix without anyone listing it; the expected answer
comes from the access each route was granted, admin for a route nobody
granted anything.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer

from cdcsync.schemas.config import Config
from cdcsync.schemas.events import OperatorAction
from cdcsync.streams import app as app_module
from cdcsync.streams import pages
from cdcsync.streams.app import create_app
from cdcsync.streams.auth import rank
from cdcsync.streams.guard import CSRF_HEADER, SESSION_COOKIE, WebGuard
from cdcsync.testing.pages import RecordingSources

TOKENS = {
    "ann": ("viewer", "viewer-token-0123456789"),
    "bob": ("operator", "operator-token-0123456789"),
    "cid": ("admin", "admin-token-0123456789"),
}
SCRAPER = "scraper-token-0123456789"
WRONG = "not-a-token-0123456789"
ENV = {f"TOKEN_{name.upper()}": token for name, (_, token) in TOKENS.items()} | {
    "TOKEN_SCRAPER": SCRAPER
}
TTL_S = 600.0


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Audit:
    records: list[OperatorAction] = field(default_factory=list)

    async def record(self, action: OperatorAction) -> None:
        self.records.append(action)


@dataclass
class Rig:
    client: TestClient
    guard: WebGuard
    clock: Clock
    audit: Audit
    table: Any


def _config(tmp: Path) -> Config:
    tokens = {
        name: {"role": role, "env": f"TOKEN_{name.upper()}"} for name, (role, _) in TOKENS.items()
    }
    web = {
        "tokens": tokens,
        "metrics": {"access": "token", "token": {"env": "TOKEN_SCRAPER"}},
        "session_ttl_s": TTL_S,
    }
    entity = {
        "topic": "t.contact",
        "mapping": {"email": "email"},
        "target": {"provider": "rest", "settings": {"base_url": "http://127.0.0.1:1"}},
    }
    return Config.model_validate(
        {"app": {"datadir": str(tmp), "web": web}, "entities": {"contact": entity}}
    )


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    config = _config(tmp_path)
    clock = Clock()
    guard = WebGuard(config.app.web, environ=ENV, clock=clock)
    monkeypatch.setattr(app_module, "WebGuard", lambda web: guard)
    # The operator page's Kafka and database I/O: recorded, never sent (cdcsync.testing.pages).
    monkeypatch.setattr(pages, "make_sources", lambda *a: RecordingSources().sources())
    app = create_app(config)
    app.web.init_server()  # Faust's blueprints, as the worker serves them
    table = app.tables["state_contact"]
    table.data["42"] = {"status": "synced", "external_id": "x-42"}
    monkeypatch.setattr("cdcsync.streams.web_state.recent_events", lambda *a: (None, None))
    audit = Audit()
    guard.auditor = audit  # type: ignore[assignment]
    # Credentials are sent explicitly per case: no jar carries a session between cases.
    async with TestClient(TestServer(app.web.web_app), cookie_jar=DummyCookieJar()) as client:
        yield Rig(client, guard, clock, audit, table)


async def _login(rig: Rig, name: str) -> tuple[str, str]:
    answer = await rig.client.post("/login", json={"token": TOKENS[name][1]})
    assert answer.status == 200, await answer.text()
    return answer.cookies[SESSION_COOKIE].value, (await answer.json())["csrf_token"]


#: Each credential: how it is presented, the role it carries (None: no valid one), and
#: the refusal a POST meets whatever the route (a cookie without CSRF, a cross-site one).
CREDENTIALS = [
    "none", "wrong", "malformed", "scraper",
    "bearer:ann", "bearer:bob", "bearer:cid", "bearer:cid+cross-origin",
    "session:ann", "session:bob", "session:cid", "session:expired",
    "session:bob-no-csrf", "session:bob-wrong-csrf", "session:cid-cross-origin",
    "session:cid-cross-site", "session:cid-after-logout",
]  # fmt: skip


async def _present(rig: Rig, credential: str) -> dict[str, str]:
    """The headers of one credential (logging in first for a session)."""
    kind, _, who = credential.partition(":")
    if kind == "none":
        return {}
    if kind in ("wrong", "malformed", "scraper"):
        value = {
            "wrong": f"Bearer {WRONG}",
            "malformed": "Basic abc",
            "scraper": f"Bearer {SCRAPER}",
        }
        return {"Authorization": value[kind]}
    if kind == "bearer":
        name = who.split("+")[0]
        extra = {"Origin": "https://evil.test"} if "cross" in who else {}
        return {"Authorization": f"Bearer {TOKENS[name][1]}", **extra}
    name = {"ann": "ann", "expired": "bob"}.get(who, who[:3])
    cookie, csrf = await _login(rig, name)
    origin = f"http://{rig.client.host}:{rig.client.port}"  # the server's own
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}", CSRF_HEADER: csrf, "Origin": origin}
    if who == "expired":
        rig.clock.now += TTL_S + 1
    elif who.endswith("no-csrf"):
        del headers[CSRF_HEADER]
    elif who.endswith("wrong-csrf"):
        headers[CSRF_HEADER] = "guessed"
    elif who.endswith("cross-origin"):
        headers["Origin"] = "https://evil.test"
    elif who.endswith("cross-site"):
        headers["Sec-Fetch-Site"] = "cross-site"
    elif who.endswith("after-logout"):
        assert (await rig.client.post("/logout", headers=headers)).status == 200
    return headers


def _expected(access: str, credential: str, method: str) -> int | None:
    """401 or 403 for a refusal, ``None`` when the view must be reached."""
    if access == "public":
        return None
    if access == "signed":  # none of these carries a Standard Webhooks signature
        return 401
    kind, _, who = credential.partition(":")
    if kind in ("none", "wrong", "malformed") or who in ("expired", "cid-after-logout"):
        return 401
    if kind == "scraper":
        return None if access == "metrics" else 403
    role = TOKENS[who[:3]][0]
    unsafe = method not in ("GET", "HEAD")
    if kind == "session" and unsafe and who[3:] not in ("",):
        return 403  # missing or wrong CSRF token, cross-origin or cross-site
    needed = "viewer" if access == "metrics" else access
    return None if rank(role) >= rank(needed) else 403


def _routes(rig: Rig) -> list[tuple[str, str, str]]:
    """Every (method, path, access) the app serves, but /login (tested on its own)."""
    app: Any = rig.client.server.app
    routes = []
    for route in app.router.routes():
        canonical = route.resource.canonical
        if canonical == "/login":
            continue
        path = canonical.replace("{entity}", "contact").replace("{entity_id}", "42")
        method = "GET" if route.method == "HEAD" else route.method
        access = rig.guard.access.get(canonical, {}).get(method, "admin")
        routes.append((route.method, path, access))
    return routes


async def test_every_route_method_and_credential(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    routes = _routes(rig)
    assert {p for _, p, _ in routes} >= {
        "/healthz",
        "/metrics",
        "/state/contact/42",
        "/",
        "/logout",
    }
    cases = 0
    for method, path, access in routes:
        for credential in CREDENTIALS:
            rig.clock.now = 1_000_000.0
            headers = await _present(rig, credential)
            answer = await rig.client.request(method, path, headers=headers)
            expected = _expected(access, credential, method)
            where = f"{method} {path} ({access}) with {credential}: {answer.status}"
            if expected is None:
                assert answer.status not in (401, 403), where + " " + await answer.text()
            else:
                assert answer.status == expected, where + " " + await answer.text()
            cases += 1
    assert cases == len(routes) * len(CREDENTIALS) >= 250
    secrets = [t for _, t in TOKENS.values()] + [SCRAPER]
    assert not any(secret in caplog.text for secret in secrets)


async def test_every_route_but_health_refuses_a_caller_without_a_credential(rig: Rig) -> None:
    for method, path, access in _routes(rig):
        answer = await rig.client.request(method, path)
        if path in ("/healthz", "/readyz"):
            assert answer.status != 401
        else:
            assert answer.status == 401, f"{method} {path} ({access})"
    assert (await rig.client.get("/table/state_contact")).status == 401  # no such page for anyone
    admin = {"Authorization": f"Bearer {TOKENS['cid'][1]}"}
    assert (await rig.client.get("/table/state_contact", headers=admin)).status == 404
    assert (await rig.client.get("/router", headers=admin)).status == 404


async def test_viewers_see_row_values_masked_operators_in_full(rig: Rig) -> None:
    parked = {"key": '{"id":42}', "value": '{"email":"a@b"}', "topic": "t.contact",
              "partition": 0, "offset": 1, "received_ms": 1}  # fmt: skip
    rig.table.data["42"] = {"status": "retrying", "external_id": "x-42", "parked": [parked]}
    for name, shown in (("ann", "***"), ("bob", parked["value"]), ("cid", parked["value"])):
        headers = {"Authorization": f"Bearer {TOKENS[name][1]}"}
        answer = await rig.client.get("/state/contact/42", headers=headers)
        assert answer.status == 200
        body = await answer.json()
        assert body["state"]["external_id"] == "x-42"
        assert body["state"]["parked"][0]["value"] == shown


async def test_every_post_is_audited_with_who_what_and_result(rig: Rig) -> None:
    await rig.client.post("/logout", headers={"Authorization": f"Bearer {TOKENS['bob'][1]}"})
    await rig.client.post("/logout")
    await rig.client.post("/login", json={"token": WRONG})
    await _login(rig, "ann")
    seen = [(r.actor, r.role, r.action, r.result, r.status) for r in rig.audit.records]
    assert seen == [
        ("bob", "operator", "POST /logout", "ok", 200),
        ("anonymous", "none", "POST /logout", "refused", 401),
        ("anonymous", "none", "POST /login", "refused", 401),
        ("ann", "viewer", "POST /login", "ok", 200),
    ]


async def test_login_sets_a_strict_http_only_cookie_secure_behind_a_tls_proxy(rig: Rig) -> None:
    token = {"token": TOKENS["bob"][1]}
    plain = await rig.client.post("/login", json=token)
    cookie = plain.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
    assert cookie["max-age"] == str(int(TTL_S))
    body = await plain.json()
    assert (body["name"], body["role"], body["csrf_header"]) == ("bob", "operator", CSRF_HEADER)
    proxied = await rig.client.post("/login", json=token, headers={"X-Forwarded-Proto": "https"})
    assert proxied.cookies[SESSION_COOKIE]["secure"]


async def test_login_refuses_cross_origin_unknown_tokens_and_throttles(rig: Rig) -> None:
    token = {"token": TOKENS["cid"][1]}
    evil = await rig.client.post("/login", json=token, headers={"Origin": "https://evil.test"})
    assert evil.status == 403
    site = await rig.client.post("/login", json=token, headers={"Sec-Fetch-Site": "cross-site"})
    assert site.status == 403
    scraper = await rig.client.post("/login", json={"token": SCRAPER})
    assert scraper.status == 401  # the metrics token opens no session
    for _ in range(4):
        assert (await rig.client.post("/login", data={"token": WRONG})).status == 401
    assert (await rig.client.post("/login", json=token)).status == 429


async def test_a_session_ends_when_its_token_is_rotated(rig: Rig) -> None:
    cookie, _ = await _login(rig, "ann")
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    assert (await rig.client.get("/session", headers=headers)).status == 200
    rotated = {**ENV, "TOKEN_ANN": "a-new-viewer-token-987654321"}
    rig.guard.tokens.environ = rotated
    rig.guard.tokens.refresh_s = 0
    assert (await rig.client.get("/session", headers=headers)).status == 401
    old = {"Authorization": f"Bearer {TOKENS['ann'][1]}"}
    assert (await rig.client.get("/session", headers=old)).status == 401
    new = {"Authorization": "Bearer a-new-viewer-token-987654321"}
    assert (await rig.client.get("/session", headers=new)).status == 200
