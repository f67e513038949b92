"""The guard's parts: tokens, sessions, /metrics access, audit, replay memory, /state."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from cdcsync.schemas.config import Config
from cdcsync.schemas.events import OperatorAction
from cdcsync.schemas.web import WebConfig
from cdcsync.streams.auth import Principal, SessionStore, TokenStore
from cdcsync.streams.guard import WebGuard, note_entities
from cdcsync.streams.web_state import partition_owner, state_page
from cdcsync.streams.webhooks import SeenIds, parse_secret, secrets_for

VIEWER = "viewer-token-0123456789"
SCRAPER = "scraper-token-0123456789"


def _web(**settings: Any) -> WebConfig:
    tokens = {"ann": {"role": "viewer", "env": "T_ANN"}}
    return WebConfig.model_validate({"tokens": tokens, **settings})


class Audit:
    def __init__(self) -> None:
        self.records: list[OperatorAction] = []

    async def record(self, action: OperatorAction) -> None:
        self.records.append(action)


async def _client(guard: WebGuard) -> TestClient:
    """A bare aiohttp app behind the guard: /metrics, an ungranted page, a failing POST."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def fails(request: web.Request) -> web.Response:
        note_entities(request, ["7"])
        raise RuntimeError("boom")

    app = web.Application(**guard.application_options())
    app.router.add_get("/metrics", ok)
    app.router.add_get("/forgotten", ok)
    app.router.add_post("/act/{entity}", fails)
    guard.allow("/metrics", GET="metrics")
    guard.allow("/act/{entity}", POST="viewer")
    return TestClient(TestServer(app), cookie_jar=DummyCookieJar())


@pytest.fixture
async def loopback() -> AsyncIterator[TestClient]:
    guard = WebGuard(_web(), environ={"T_ANN": VIEWER})
    async with await _client(guard) as client:
        yield client


async def test_metrics_on_loopback_need_no_token_unless_proxied(loopback: TestClient) -> None:
    assert (await loopback.get("/metrics")).status == 200
    proxied = await loopback.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status == 401
    bearer = {"X-Forwarded-For": "203.0.113.9", "Authorization": f"Bearer {VIEWER}"}
    assert (await loopback.get("/metrics", headers=bearer)).status == 200


async def test_metrics_by_token_refuse_loopback_without_it() -> None:
    settings = {"metrics": {"access": "token", "token": {"env": "T_SCRAPE"}}}
    guard = WebGuard(_web(**settings), environ={"T_ANN": VIEWER, "T_SCRAPE": SCRAPER})
    async with await _client(guard) as client:
        assert (await client.get("/metrics")).status == 401
        scraper = {"Authorization": f"Bearer {SCRAPER}"}
        assert (await client.get("/metrics", headers=scraper)).status == 200
        assert (await client.get("/forgotten", headers=scraper)).status == 403


async def test_an_ungranted_page_needs_admin(loopback: TestClient) -> None:
    assert (await loopback.get("/forgotten")).status == 401
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    answer = await loopback.get("/forgotten", headers=viewer)
    assert answer.status == 403 and "admin" in (await answer.json())["error"]
    assert (await loopback.get("/no/such/page")).status == 401
    assert (await loopback.get("/no/such/page", headers=viewer)).status == 404


async def test_a_failing_action_is_audited_as_failed() -> None:
    guard = WebGuard(_web(), environ={"T_ANN": VIEWER})
    guard.auditor = Audit()  # type: ignore[assignment]
    async with await _client(guard) as client:
        answer = await client.post("/act/contact", headers={"Authorization": f"Bearer {VIEWER}"})
    assert answer.status == 500
    [record] = guard.auditor.records  # type: ignore[attr-defined]
    assert (record.actor, record.action, record.entity, record.entity_ids, record.result) == (
        "ann", "POST /act/{entity}", "contact", ["7"], "failed",
    )  # fmt: skip


def test_tokens_are_re_read_and_short_or_missing_ones_refused_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "token"
    secret.write_text("short\n")
    web_config = WebConfig.model_validate(
        {
            "tokens": {
                "ops": {"role": "operator", "file": str(secret)},
                "gone": {"role": "admin", "env": "NOPE"},
            }
        }
    )
    clock = SimpleNamespace(now=0.0)
    store = TokenStore(web_config, environ={}, clock=lambda: clock.now)
    assert store.identify("short") is None
    assert "ops refused: shorter than 16" in caplog.text and "short\n" not in caplog.text
    assert "gone unusable" in caplog.text and "NOPE" in caplog.text
    secret.write_text("a-long-enough-operator-token\n")
    assert store.identify("a-long-enough-operator-token") is None  # until the refresh
    clock.now = 5.0
    found = store.identify("a-long-enough-operator-token")
    assert found is not None and found[:2] == ("ops", "operator")
    assert store.identify("a-long-enough-operator-tokeN") is None


def test_sessions_expire_and_stay_bounded() -> None:
    clock = SimpleNamespace(now=100.0)
    store = SessionStore(60, max_sessions=2, clock=lambda: clock.now)
    first, _ = store.open("ann", "viewer", b"d")
    second, session = store.open("bob", "operator", b"d")
    assert store.get(first) is not None and session.expires_at == 160
    store.open("cid", "admin", b"d")
    assert len(store) == 2 and store.get(first) is None  # the oldest went
    clock.now = 160
    assert store.get(second) is None
    store.close("whatever")


def test_roles_include_the_ones_below() -> None:
    admin, viewer = Principal("a", "admin", "bearer"), Principal("v", "viewer", "bearer")
    assert admin.allows("viewer") and admin.allows("admin") and viewer.allows("viewer")
    assert not viewer.allows("operator")
    assert not Principal("m", "metrics", "bearer").allows("viewer")


def test_a_replay_is_caught_by_another_worker_and_after_a_restart() -> None:
    shared: dict[str, float] = {}  # the webhook_ids table every worker reads
    one, other = SeenIds(store=shared), SeenIds(store=shared)
    assert one.first_time("msg_1", now_s=1000)
    assert not other.first_time("msg_1", now_s=1001)
    assert not SeenIds(store=shared).first_time("msg_1", now_s=1002)  # restarted
    one.forget("msg_1")
    assert other.first_time("msg_1", now_s=1003)
    assert one.first_time("msg_2", now_s=1000) and "msg_2" in shared
    one.first_time("msg_3", now_s=1000 + 601)
    assert "msg_2" not in shared  # expired ids are deleted from the table


def test_webhook_secrets_from_a_file_rotate_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "whsec"
    old = "whsec_" + base64.b64encode(b"the old secret").decode()
    new = "whsec_" + base64.b64encode(b"the new secret").decode()
    entity = {
        "topic": "t.contact",
        "mapping": {"email": "email"},
        "target": {"provider": "rest", "settings": {"base_url": "http://127.0.0.1:1"}},
    }
    config = Config.model_validate({
        "app": {"web": {"webhook_secrets": {"contact": [{"file": str(path)}, {"env": "W"}]}}},
        "entities": {"contact": entity},
    })  # fmt: skip
    path.write_text(old + "\n")
    assert secrets_for(config, "contact", {}) == [parse_secret(old)]
    path.write_text(f"{new} {old}\n")
    assert secrets_for(config, "contact", {"W": new}) == [parse_secret(s) for s in (new, old, new)]
    path.unlink()
    assert secrets_for(config, "contact", {}) == []


class FakeView:
    def json(self, value: Any, *, status: int = 200) -> tuple[int, Any]:
        return status, value


def _assignor(active: bool, metadata: dict[str, Any]) -> Any:
    return SimpleNamespace(assignor=SimpleNamespace(
        is_active=lambda tp: active, table_metadata=lambda topic: metadata,
    ))  # fmt: skip


async def test_an_unknown_id_is_answered_without_reading_kafka() -> None:
    entity = {
        "topic": "t.contact",
        "mapping": {"email": "email"},
        "target": {"provider": "rest", "settings": {"base_url": "http://127.0.0.1:1"}},
    }
    config = Config.model_validate({"entities": {"contact": entity}})
    topic = config.changelog_topic("contact")

    def never(*args: Any) -> Any:
        raise AssertionError("Kafka was read")

    here = state_page(_assignor(True, {}), config, {"contact": {}}, events=never)
    status, body = await here(FakeView(), None, "contact", "42")
    assert status == 404 and body["known"] is False
    elsewhere = _assignor(False, {"http://w2:6066": {topic: set(range(4))}})
    status, body = await state_page(elsewhere, config, {"contact": {}}, events=never)(
        FakeView(), None, "contact", "42"
    )
    assert (status, body["worker"]) == (421, "http://w2:6066")
    assert partition_owner(_assignor(False, {}), topic, 0) is None
    assert partition_owner(SimpleNamespace(), topic, 0) is None
    start = time.monotonic()
    status, _ = await state_page(_assignor(False, {}), config, {"contact": {}}, events=never)(
        FakeView(), None, "contact", "42"
    )
    assert status == 503 and time.monotonic() - start < 1


def test_no_token_is_logged_on_refusal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = TokenStore(_web(), environ={"T_ANN": VIEWER})
    assert store.identify("x" * 20) is None and store.identify(VIEWER) is not None
    assert VIEWER not in caplog.text
