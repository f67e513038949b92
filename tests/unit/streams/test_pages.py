"""The operator page against the aiohttp app Faust builds: pages per role, actions, refusals.

Kafka and the database are stood in for by ``cdcsync.testing.pages.RecordingSources``;
the access of every new route is also walked by ``test_web_matrix``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer

from cdcsync.operators.dlq import Letter
from cdcsync.schemas.config import Config
from cdcsync.schemas.events import (
    DeadLetter,
    OperatorAction,
    RawRecord,
    SourcePosition,
)
from cdcsync.streams import app as app_module
from cdcsync.streams import pages
from cdcsync.streams.app import create_app
from cdcsync.streams.guard import CSRF_HEADER, SESSION_COOKIE, WebGuard
from cdcsync.streams.pages.tails import Timeline
from cdcsync.testing import samples
from cdcsync.testing.pages import RecordingSources

TOKENS = {
    "ann": ("viewer", "viewer-token-0123456789"),
    "bob": ("operator", "operator-token-0123456789"),
    "cid": ("admin", "admin-token-0123456789"),
}
ENV = {f"TOKEN_{name.upper()}": token for name, (_, token) in TOKENS.items()}
SECRET_VALUE = "alice@example.org"
POS = SourcePosition(topic="t.contact", partition=0, offset=5)


def _config(tmp: Path) -> Config:
    tokens = {n: {"role": r, "env": f"TOKEN_{n.upper()}"} for n, (r, _) in TOKENS.items()}
    crm = {"provider": "rest", "settings": {"base_url": "https://user:s3cret@crm.test/api",
                                            "rate_limit_rps": 5},
           "secrets": {"token": {"env": "CRM_TOKEN"}}}  # fmt: skip
    settings = {"collection_path": "/contacts", "object_type": "contact"}
    entity = {"topic": "t.contact", "mapping": {"email": "email"},
              "target": {"integration": "crm", "settings": settings}}  # fmt: skip
    return Config.model_validate({
        "app": {"datadir": str(tmp), "web": {"tokens": tokens}},
        "integrations": {"crm": crm}, "entities": {"contact": entity},
    })  # fmt: skip


def _letter(offset: int, entity_id: str = "9", reason: str = "mapping") -> Letter:
    dead = DeadLetter(
        entity="contact", entity_id=entity_id, reason=reason, error_type="MappingError",
        error="no email", source=POS, failed_ms=1_700_000_000_000 + offset,
        original=RawRecord(key='{"id":9}', value=f'{{"email":"{SECRET_VALUE}"}}'),
    )  # fmt: skip
    return Letter(dead, 1, offset, 0)


@dataclass
class Rig:
    client: TestClient
    sources: RecordingSources
    table: Any
    audit: list[OperatorAction]


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    config = _config(tmp_path)
    monkeypatch.setenv("CRM_TOKEN", "crm-secret-token")  # the sink (its link()) reads it
    guard = WebGuard(config.app.web, environ=ENV)
    recording = RecordingSources(letters=[_letter(3)])
    monkeypatch.setattr(app_module, "WebGuard", lambda web: guard)
    monkeypatch.setattr(pages, "make_sources", lambda *a: recording.sources())
    app = create_app(config)
    app.web.init_server()
    table = app.tables["state_contact"]
    parked = {"key": '{"id":7}', "value": f'{{"email":"{SECRET_VALUE}"}}', "topic": "t.contact",
              "partition": 0, "offset": 4, "received_ms": 1_700_000_000_000}  # fmt: skip
    table.data["42"] = {"status": "synced", "external_id": "x-42", "updated_ms": 1}
    table.data["7"] = {"status": "retrying", "external_id": "x-7", "parked": [parked],
                       "attempts": 2, "last_error": "HTTP 503", "retry_at_ms": 1_700_000_060_000,
                       "updated_ms": 1_700_000_000_000}  # fmt: skip
    table.data["8"] = {"status": "conflict", "external_id": "x-8", "updated_ms": 1_700_000_000_500}
    audit: list[OperatorAction] = []

    class Audit:
        async def record(self, action: OperatorAction) -> None:
            audit.append(action)

    guard.auditor = Audit()  # type: ignore[assignment]
    async with TestClient(TestServer(app.web.web_app), cookie_jar=DummyCookieJar()) as client:
        yield Rig(client, recording, table, audit)


def _as(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][1]}"}


@pytest.mark.parametrize("name", ["ann", "bob", "cid"])
@pytest.mark.parametrize(
    "path", ["/ui", "/ui/problems", "/ui/entity/contact/7", "/ui/integrations"]
)
async def test_each_page_renders_for_each_role(rig: Rig, name: str, path: str) -> None:
    answer = await rig.client.get(path, headers=_as(name))
    assert answer.status == 200, await answer.text()
    assert answer.content_type == "text/html"
    text = await answer.text()
    assert f"{name} ({TOKENS[name][0]})" in text
    assert "s3cret" not in text and "crm-secret-token" not in text  # no secret, ever


async def test_viewers_see_no_action_buttons_and_masked_values(rig: Rig) -> None:
    pages_of = {}
    for name in ("ann", "bob", "cid"):
        entity = await (await rig.client.get("/ui/entity/contact/7", headers=_as(name))).text()
        problems = await (await rig.client.get("/ui/problems", headers=_as(name))).text()
        pages_of[name] = (entity, problems)
    viewer_entity, viewer_problems = pages_of["ann"]
    assert "Retry now" not in viewer_entity + viewer_problems
    assert SECRET_VALUE not in viewer_entity and "***" in viewer_entity
    operator_entity, operator_problems = pages_of["bob"]
    assert "Retry now" in operator_problems and SECRET_VALUE in operator_entity
    assert "Retry selected" not in operator_problems  # bulk is the admin's
    assert "Retry selected" in pages_of["cid"][1]


async def test_problems_list_filters_searches_and_links_out(rig: Rig) -> None:
    text = await (await rig.client.get("/ui/problems", headers=_as("bob"))).text()
    assert "3 problem(s)" in text  # retrying 7, conflict 8, the dead letter of 9
    assert 'href="https://crm.test/api/contacts/x-7"' in text  # link(), without credentials
    only = await (await rig.client.get("/ui/problems?kind=config", headers=_as("bob"))).text()
    assert "1 problem(s)" in only and "mapping: no email" in only
    found = await (await rig.client.get("/ui/problems?q=x-8", headers=_as("bob"))).text()
    assert "1 problem(s)" in found and "/ui/entity/contact/8" in found
    bad = await rig.client.get("/ui/problems?since=yesterday-ish", headers=_as("bob"))
    assert bad.status == 400


async def test_retry_sends_the_cli_s_control_record_and_skips_what_has_nothing_parked(
    rig: Rig,
) -> None:
    answer = await rig.client.post("/ui/retry/contact/7", headers=_as("bob"))
    assert answer.status == 200
    assert "Retry now: 1 acted on, 0 skipped" in await answer.text()
    [(entity, entity_id, control)] = rig.sources.controls
    assert (entity, entity_id, control.command, control.force) == ("contact", "7", "retry", True)
    assert control.by == "web:bob" and control.origin == "control"
    skipped = await rig.client.post("/ui/retry/contact/42", headers=_as("bob"))
    assert "0 acted on, 1 skipped" in await skipped.text()
    assert "nothing parked (status synced)" in await skipped.text()
    assert len(rig.sources.controls) == 1
    assert (rig.audit[0].action, rig.audit[0].entity_ids) == (
        "POST /ui/retry/{entity}/{entity_id}", ["7"],
    )  # fmt: skip


async def test_cancel_resolve_and_sync_now(rig: Rig) -> None:
    await rig.client.post("/ui/cancel/contact/7", headers=_as("bob"))
    resolved = await rig.client.post("/ui/resolve/contact/8", data={"take": "target"},
                                     headers=_as("bob"))  # fmt: skip
    assert resolved.status == 200
    no_side = await rig.client.post("/ui/resolve/contact/8", headers=_as("bob"))
    assert no_side.status == 400
    wrong = await rig.client.post("/ui/resolve/contact/7", data={"take": "source"},
                                  headers=_as("bob"))  # fmt: skip
    assert "no conflict to resolve (status retrying)" in await wrong.text()
    assert [(c.command, c.take) for _, _, c in rig.sources.controls] == [
        ("cancel", None), ("resolve", "target"),
    ]  # fmt: skip
    synced = await rig.client.post("/ui/sync/contact/42", headers=_as("bob"))
    assert "published to contact[0]@0" in await synced.text()
    assert rig.sources.triggers == [("contact", "42")]


async def test_bulk_is_the_admin_s_and_answers_acted_and_skipped_by_reason(rig: Rig) -> None:
    ids = {"do": "retry", "ids": ["contact/7", "contact/42", "dlq/1/3"]}
    refused = await rig.client.post("/ui/bulk", data=ids, headers=_as("bob"))
    assert refused.status == 403 and not rig.sources.controls
    answer = await rig.client.post("/ui/bulk", data=ids, headers=_as("cid"))
    text = await answer.text()
    assert "Retry now: 1 acted on, 2 skipped" in text
    assert "nothing parked (status synced)" in text and "redrive it instead" in text
    every = await rig.client.post(
        "/ui/bulk", data={"do": "redrive", "all": "1", "status": "dead_letter"}, headers=_as("cid")
    )
    assert "Redrive: 1 acted on, 0 skipped" in await every.text()  # fmt: skip
    assert [e.mark for e in rig.sources.redriven] == ["1/3"]
    nothing = await rig.client.post("/ui/bulk", data={"do": "retry"}, headers=_as("cid"))
    assert nothing.status == 400


async def test_redrive_one_then_again_is_skipped(rig: Rig) -> None:
    first = await rig.client.post("/ui/redrive", data={"letter": "1/3"}, headers=_as("bob"))
    assert "Redrive: 1 acted on, 0 skipped" in await first.text()
    again = await rig.client.post("/ui/redrive", data={"letter": "1/3"}, headers=_as("bob"))
    assert "already redriven from this page" in await again.text()
    gone = await rig.client.post("/ui/redrive", data={"letter": "0/99"}, headers=_as("bob"))
    assert "not among the recent dead letters" in await gone.text()
    assert len(rig.sources.redriven) == 1


async def test_entity_page_shows_the_conflict_side_by_side_and_the_timeline(rig: Rig) -> None:
    conflict, result = samples.conflict({"email": "a@x", "name": "Ann"},
                                        {"email": "b@x", "name": "Ann"}, source=POS)  # fmt: skip
    rig.sources.timelines[("contact", "8")] = Timeline(results=[result], conflicts=[conflict])
    text = await (await rig.client.get("/ui/entity/contact/8", headers=_as("bob"))).text()
    assert '<tr class="diff"><td>email ≠</td><td>a@x</td><td>b@x</td></tr>' in text
    assert "<tr><td>name</td><td>Ann</td><td>Ann</td></tr>" in text
    assert "Take source" in text and "Take target" in text and "data-confirm" in text
    viewer = await (await rig.client.get("/ui/entity/contact/8", headers=_as("ann"))).text()
    assert "a@x" not in viewer and "Take source" not in viewer
    missing = await rig.client.get("/ui/entity/contact/404", headers=_as("ann"))
    assert missing.status == 404


async def test_a_browser_without_a_session_gets_the_login_form(rig: Rig) -> None:
    html = await rig.client.get("/ui/problems", headers={"Accept": "text/html"})
    assert html.status == 401 and 'id="login"' in await html.text()
    api = await rig.client.get("/ui/problems")
    assert api.status == 401 and "error" in await api.json()


async def test_a_session_s_actions_need_its_csrf_token(rig: Rig) -> None:
    login = await rig.client.post("/login", json={"token": TOKENS["bob"][1]})
    cookie, csrf = login.cookies[SESSION_COOKIE].value, (await login.json())["csrf_token"]
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    page = await (await rig.client.get("/ui", headers=headers)).text()
    assert f'<meta name="csrf-token" content="{csrf}">' in page
    assert (await rig.client.post("/ui/retry/contact/7", headers=headers)).status == 403
    ok = await rig.client.post("/ui/retry/contact/7", headers={**headers, CSRF_HEADER: csrf})
    assert ok.status == 200 and len(rig.sources.controls) == 1


async def test_integrations_show_url_rate_limit_and_secret_names_only(rig: Rig) -> None:
    text = await (await rig.client.get("/ui/integrations", headers=_as("ann"))).text()
    assert "https://crm.test/api" in text and "<td>5</td>" in text and "token" in text
    assert "CRM_TOKEN" not in text and "s3cret" not in text
