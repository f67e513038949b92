"""The worker's endpoints: registered on the app; webhook bodies, refusals, consumer lag."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from cdcsync.errors import SchemaError
from cdcsync.schemas.config import AppConfig, Config
from cdcsync.streams.app import create_app
from cdcsync.streams.web import WebhookReceiver, consumer_lag, entity_id_from_body, healthz
from cdcsync.streams.webhooks import parse_secret, sign

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"id": 42}', "42"),
        (b'{"id": "A-1"}', "A-1"),
        (b'{"type": "contact.updated", "data": {"id": 7}}', "7"),
    ],
)
def test_entity_id_from_body(body, expected):
    assert entity_id_from_body(body, "id") == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"nope", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"external_id": "x"}', "names no 'id'"),
        (b'{"id": true}', "string or an integer"),
        (b'{"id": {"a": 1}}', "string or an integer"),
    ],
)
def test_bodies_without_an_id_are_refused(body, reason):
    with pytest.raises(SchemaError, match=reason):
        entity_id_from_body(body, "id")


def test_consumer_lag_counts_from_the_last_read_or_committed_offset():
    a, b, c, d = (
        TP("cdcsync.contact", 0),
        TP("cdcsync.contact", 1),
        TP("other", 0),
        TP("cdcsync.contact", 2),
    )
    highwaters = {a: 10, b: 5, c: 100, d: None}
    consumer = SimpleNamespace(
        assignment=lambda: [a, b, c, d],
        highwater=lambda t: highwaters[t],
        _read_offset={a: 6},
        _committed_offset={b: 2},
    )
    app = SimpleNamespace(consumer=consumer)
    assert consumer_lag(app, {"cdcsync.contact"}) == {
        ("cdcsync.contact", 0): 3,
        ("cdcsync.contact", 1): 3,
    }


class FakeView:
    """What the handlers use of a Faust view: ``json`` (answers as ``(status, body)``)."""

    def json(self, value: Any, *, status: int = 200) -> tuple[int, Any]:
        return status, value


class FakeRequest:
    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self.body, self.headers = body, headers

    async def read(self) -> bytes:
        return self.body


def _config() -> Config:
    entity = {
        "topic": "t.contact",
        "mapping": {"email": "email"},
        "target": {"provider": "rest", "settings": {"base_url": "http://127.0.0.1:1"}},
    }
    return Config.model_validate({"entities": {"contact": entity}})


def _signed(body: bytes, msg_id: str = "msg_1") -> dict[str, str]:
    now = int(time.time())
    signature = sign(parse_secret(SECRET), msg_id, now, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": signature}


def test_every_endpoint_is_registered_on_the_app(tmp_path: Path) -> None:
    config = _config().model_copy(update={"app": AppConfig(datadir=str(tmp_path))})
    app = create_app(config)
    assert set(app.web.views) == {
        "/healthz",
        "/readyz",
        "/metrics",
        "/state/{entity}/{entity_id}",
        "/webhooks/{entity}",
        "/login",
        "/session",
        "/logout",
        # the operator page (cdcsync.streams.pages)
        "/ui",
        "/ui/problems",
        "/ui/entity/{entity}/{entity_id}",
        "/ui/integrations",
        "/ui/retry/{entity}/{entity_id}",
        "/ui/cancel/{entity}/{entity_id}",
        "/ui/resolve/{entity}/{entity_id}",
        "/ui/sync/{entity}/{entity_id}",
        "/ui/redrive",
        "/ui/bulk",
    }


def test_the_worker_binds_loopback_and_serves_none_of_faust_s_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_BIND", "0.0.0.0")  # Faust's own variable: the file wins
    monkeypatch.setenv("APP_WEB_TABLES_ENABLED", "true")
    config = _config().model_copy(update={"app": AppConfig(datadir=str(tmp_path))})
    app = create_app(config)
    assert (app.conf.web_bind, app.conf.web_host) == ("127.0.0.1", "127.0.0.1")
    ours = set(app.web.views)
    app.web.init_server()
    served = {r.resource.canonical for r in app.web.web_app.router.routes()}
    assert not {p for p in served if p.startswith(("/table", "/router", "/graph", "/perf"))}
    assert served - ours == {"/"}  # Faust's {"status": "OK"}, admin only


def test_an_exposed_worker_binds_everywhere_and_names_itself(tmp_path: Path) -> None:
    web = {"bind": "0.0.0.0", "host": "worker-1.internal"}
    app_config = AppConfig.model_validate({"datadir": str(tmp_path), "web": web})
    app = create_app(_config().model_copy(update={"app": app_config}))
    assert (app.conf.web_bind, app.conf.web_host) == ("0.0.0.0", "worker-1.internal")


async def test_liveness_answers_ok() -> None:
    assert await healthz(FakeView(), None) == (200, {"status": "ok"})  # type: ignore[arg-type]


async def test_a_webhook_for_an_unknown_entity_or_unsigned_is_refused() -> None:
    receiver = WebhookReceiver(_config(), topics=None)  # type: ignore[arg-type]
    view: Any = FakeView()
    unknown = await receiver.receive(view, FakeRequest(b"{}", {}), "lead")
    assert unknown == (404, {"error": "unknown entity 'lead'"})
    status, body = await receiver.receive(view, FakeRequest(b"{}", {}), "contact")
    assert status == 400 and "missing header" in body["error"]


async def test_a_refused_body_forgets_the_webhook_id_so_a_fixed_retry_gets_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDCSYNC_WEBHOOK_SECRET_CONTACT", SECRET)
    receiver = WebhookReceiver(_config(), topics=None)  # type: ignore[arg-type]
    view: Any = FakeView()
    body = b'{"email": "no id here"}'
    first = await receiver.receive(view, FakeRequest(body, _signed(body)), "contact")
    again = await receiver.receive(view, FakeRequest(body, _signed(body)), "contact")
    assert first == again == (400, {"error": "the body names no 'id' (expected {\"id\": …})"})
