"""The operator page in a real headless browser (Debian's chromium, driven by Playwright).

The worker's web app (``create_app``, its guard, its routes) serves real HTTP
on 127.0.0.1; Kafka and the database are in-memory fakes: a control record the
page sends is handed straight to the entity's real agent step
(``EntitySync.handle``, with a :class:`~cdcsync.testing.sinks.MemorySink`),
as the owning worker would consume it from the entity topic. Set
``CDCSYNC_SCREENSHOTS=docs`` to refresh the README's screenshots.

Run: ``python3 -m pytest tests/browser`` (``scripts/install-deps.sh`` installs
chromium and playwright; no browser download).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from cdcsync import metrics
from cdcsync.agents.change import RawEvent
from cdcsync.agents.sync import EntitySync
from cdcsync.operators.dlq import Letter
from cdcsync.schemas.config import Config
from cdcsync.schemas.envelope import Control, encode_key
from cdcsync.schemas.events import (
    DeadLetter,
    OperatorAction,
    RawRecord,
    SourcePosition,
    SyncResult,
)
from cdcsync.streams import app as app_module
from cdcsync.streams import pages
from cdcsync.streams.app import create_app
from cdcsync.streams.guard import WebGuard
from cdcsync.streams.pages.tails import Timeline
from cdcsync.testing import samples
from cdcsync.testing.events import Topics
from cdcsync.testing.pages import RecordingSources
from cdcsync.testing.sinks import MemorySink
from cdcsync.testing.world import entity_sync

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if os.environ.get("CI"):  # CI installs both (scripts/install-deps.sh): missing is a failure
    import playwright.async_api as playwright_api

    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed (scripts/install-deps.sh)"
else:
    playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Debian's chromium is not installed (scripts/install-deps.sh)", allow_module_level=True
        )

pytestmark = pytest.mark.browser

TOKENS = {
    "ann": ("viewer", "viewer-token-0123456789"),
    "bob": ("operator", "operator-token-0123456789"),
}
ENV = {f"TOKEN_{n.upper()}": t for n, (_, t) in TOKENS.items()}
EMAIL = "alice@example.org"
NOW = int(time.time() * 1000)
POS = SourcePosition(topic="cdcsync.contact", partition=0, offset=40)
SHOTS = Path(__file__).resolve().parents[3] / "docs"


def _config(tmp: Path) -> Config:
    tokens = {n: {"role": r, "env": f"TOKEN_{n.upper()}"} for n, (r, _) in TOKENS.items()}
    settings = {"base_url": "https://crm.example.com/api", "rate_limit_rps": 20}
    crm = {"provider": "rest", "description": "the CRM's REST API", "settings": settings}

    def target(path: str, kind: str) -> dict[str, Any]:
        return {"integration": "crm", "settings": {"collection_path": path, "object_type": kind}}

    contact = {"topic": "cdcsync.contact", "mapping": {"email": "email", "name": "name"},
               "target": target("/contacts", "contact")}  # fmt: skip
    company = {"topic": "cdcsync.company", "mapping": {"name": "name"},
               "target": target("/companies", "company")}  # fmt: skip
    return Config.model_validate({
        "app": {"datadir": str(tmp), "web": {"tokens": tokens}},
        "integrations": {"crm": crm}, "entities": {"contact": contact, "company": company},
    })  # fmt: skip


def _debezium(entity_id: int, email: str, offset: int) -> dict[str, Any]:
    row = {"id": entity_id, "email": email, "name": "Alice"}
    value = {"op": "c", "before": None, "after": row, "source": {"ts_ms": NOW - 60_000}}
    return {"key": json.dumps({"id": entity_id}, separators=(",", ":")),
            "value": json.dumps(value), "topic": "cdcsync.contact", "partition": 0,
            "offset": offset, "received_ms": NOW - 60_000}  # fmt: skip


def _fill(contacts: dict[str, Any], companies: dict[str, Any]) -> None:
    """A table a person would see: mostly synced, a few of each problem."""
    for i in range(1, 40):
        contacts[str(i)] = {"status": "synced", "external_id": f"c-{i}", "updated_ms": NOW}
        companies[str(i)] = {"status": "synced", "external_id": f"co-{i}", "updated_ms": NOW}
    contacts["7"] = {"status": "retrying", "parked": [_debezium(7, EMAIL, 41)], "attempts": 3,
                     "last_error": "HTTP 503 Service Unavailable from crm.example.com",
                     "retry_at_ms": NOW + 300_000, "updated_ms": NOW - 50_000}  # fmt: skip
    contacts["8"] = {"status": "conflict", "external_id": "c-8", "updated_ms": NOW - 40_000,
                     "last_error": "both sides changed (policy manual)"}  # fmt: skip
    contacts["9"] = {
        "status": "retrying",
        "hold": "loop_suspected",
        "external_id": "c-9",
        "parked": [_debezium(9, "bob@example.org", 42)],
        "last_error": "loop suspected: 6 writes in 60 s",
        "updated_ms": NOW - 30_000,
    }
    companies["3"] = {
        "status": "permanently_failed",
        "external_id": "co-3",
        "last_error": "HTTP 422: name must be unique",
        "updated_ms": NOW - 20_000,
    }


def _letter() -> Letter:
    dead = DeadLetter(entity="contact", entity_id="12", reason="mapping", error_type="MappingError",
                      error="email: not a string", source=POS, failed_ms=NOW - 10_000,
                      original=RawRecord(key='{"id":12}', value='{"email": 12}'))  # fmt: skip
    metrics.observe_dead_letter(dead)
    return Letter(dead, 0, 5, NOW - 10_000)


@dataclass
class Site:
    url: str
    recording: RecordingSources
    sink: MemorySink


def _agent(config: Config, table: Any, recording: RecordingSources) -> tuple[EntitySync, Any]:
    """The contact entity's real agent step on the worker's table, with a MemorySink."""
    sink = MemorySink()
    topics = Topics()
    sync = entity_sync(config.entities["contact"], sink=sink, topics=topics)
    sync.table = table.data  # the Faust table's store, which the page reads
    offsets = iter(range(100, 10_000))

    async def apply(entity: str, entity_id: str, control: Control) -> None:
        key = encode_key("id", entity_id)
        position = SourcePosition(topic="cdcsync.contact", partition=0, offset=next(offsets))
        raw = RawEvent(key, control.model_dump_json().encode(), position, int(time.time() * 1000))
        await sync.handle(raw)
        timeline = recording.timelines.setdefault((entity, entity_id), Timeline())
        timeline.results = [SyncResult.model_validate(r) for r in topics.results.sent
                            if r["entity_id"] == entity_id]  # fmt: skip

    recording.apply = apply
    return sync, sink


@pytest.fixture
async def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Site]:
    config = _config(tmp_path)
    guard = WebGuard(config.app.web, environ=ENV)
    recording = RecordingSources(letters=[_letter()])
    monkeypatch.setattr(app_module, "WebGuard", lambda web: guard)
    monkeypatch.setattr(pages, "make_sources", lambda *a: recording.sources())
    app = create_app(config)
    app.web.init_server()
    contacts, companies = app.tables["state_contact"], app.tables["state_company"]
    _fill(contacts.data, companies.data)
    _sync, sink = _agent(config, contacts, recording)
    _timelines(recording)

    class Audit:
        async def record(self, action: OperatorAction) -> None:
            for entity_id in action.entity_ids:
                recording.timelines.setdefault(("contact", entity_id), Timeline()).actions.append(
                    action
                )

    guard.auditor = Audit()  # type: ignore[assignment]
    server = TestServer(app.web.web_app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Site(str(server.make_url("")).rstrip("/"), recording, sink)
    finally:
        await server.close()


def _timelines(recording: RecordingSources) -> None:
    """The conflict of contact 8, with its versions, for its page."""
    conflict, result = samples.conflict(
        {"email": EMAIL, "name": "Alice Smith", "phone": "+1 555 0100"},
        {"email": EMAIL, "name": "Alice Smith-Jones", "phone": "+1 555 0199"},
        source=POS, detected_ms=NOW - 40_000,
    )  # fmt: skip
    recording.timelines[("contact", "8")] = Timeline(results=[result], conflicts=[conflict])


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()


async def _log_in(browser: Any, site: Site, name: str) -> Any:
    page = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations
    answer = await page.goto(f"{site.url}/ui/problems")
    assert answer.status == 401  # no session: the login form
    await page.fill("#token", TOKENS[name][1])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_selector("text=problem(s)")
    return page


async def _shoot(page: Any, name: str) -> None:
    if os.environ.get("CDCSYNC_SCREENSHOTS") == "docs":
        SHOTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(SHOTS / name), full_page=True)


async def test_an_operator_retries_a_parked_entity_and_sees_it_synced(
    browser: Any, site: Site
) -> None:
    page = await _log_in(browser, site, "bob")
    await _shoot(page, "operator-problems.png")
    row = page.locator("tr", has=page.locator('a[href="/ui/entity/contact/7"]'))
    assert "HTTP 503" in await row.inner_text()
    await page.goto(f"{site.url}/ui/entity/contact/8")
    await _shoot(page, "operator-entity.png")
    await page.goto(f"{site.url}/ui")
    await _shoot(page, "operator-overview.png")
    await page.goto(f"{site.url}/ui/problems?status=retrying")
    row = page.locator("tr", has=page.locator('a[href="/ui/entity/contact/7"]'))
    await row.get_by_role("button", name="Retry now").click()
    outcome = page.locator("#outcome")
    await outcome.wait_for()
    assert "Retry now: 1 acted on, 0 skipped" in await outcome.inner_text()
    await page.click("text=Back")
    assert await page.inner_text("#status") == "synced"
    assert [o["email"] for o in site.sink.objects.values()] == [EMAIL]
    [(_, _, control)] = site.recording.controls
    assert (control.command, control.by) == ("retry", "web:bob")


async def test_a_viewer_sees_no_retry_button_and_masked_values(browser: Any, site: Site) -> None:
    page = await _log_in(browser, site, "ann")
    assert await page.get_by_role("button", name="Retry now").count() == 0
    assert "Retry now" not in await page.content()
    await page.goto(f"{site.url}/ui/entity/contact/7")
    text = await page.inner_text("main")
    assert "***" in text and EMAIL not in text
    assert await page.locator("main form.act").count() == 0  # only "Log out", in the header
    await page.goto(f"{site.url}/ui/entity/contact/8")
    assert (
        "Take source" not in await page.content()
        and "Alice Smith-Jones" not in await page.content()
    )
