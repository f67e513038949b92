"""The page's routes on Faust's web server, each granted its least role on the guard.

=========================================  ======  ========
``GET /ui``                                viewer  overview
``GET /ui/problems``                       viewer  problems list
``GET /ui/entity/{entity}/{entity_id}``    viewer  one entity
``GET /ui/integrations``                   viewer  integrations
``POST /ui/retry|cancel|resolve|sync/…``   operator  one entity
``POST /ui/redrive`` (``letter=p/o``)       operator  one dead letter
``POST /ui/bulk``                          admin   retry, cancel or redrive many
=========================================  ======  ========

A browser's GET of a page without a session gets the login form instead (a
401, from the guard's ``login_pages``); the form POSTs ``/login`` and reloads.
"""

from __future__ import annotations

from typing import Any, cast

import faust
from aiohttp import web
from faust.web import Request, Response, View

from cdcsync.streams.guard import WebGuard, note_entities
from cdcsync.streams.pages.actions import (
    BULK_MAX,
    Outcome,
    control_many,
    outcome_html,
    redrive_marks,
    sync_one,
    targets_of,
)
from cdcsync.streams.pages.context import Ui
from cdcsync.streams.pages.entity import entity_html
from cdcsync.streams.pages.integrations import integrations_html
from cdcsync.streams.pages.layout import esc, page, viewer_of
from cdcsync.streams.pages.overview import overview_html
from cdcsync.streams.pages.problems import problems_html

__all__ = ["LOGIN_PAGE", "register_routes"]

_LOGIN_SCRIPT = """
document.getElementById('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = document.getElementById('token').value;
  const r = await fetch('/login', {method: 'POST', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({token: token})});
  if (r.ok) { location.reload(); return; }
  const answer = await r.json().catch(() => ({}));
  document.getElementById('msg').textContent = answer.error || ('HTTP ' + r.status);
});
"""
LOGIN_PAGE = page(
    "Log in",
    '<form id="login"><label>Access token <input id="token" type="password" size="40" '
    'autocomplete="current-password"></label> <button>Log in</button></form>'
    f'<p id="msg" class="err" role="alert"></p><script>{_LOGIN_SCRIPT}</script>',
    None,
)
_SINGLE = ("retry", "cancel", "resolve", "sync")


async def _form(request: Request) -> tuple[dict[str, str], list[str]]:
    """The form's fields (last value each) and its ``ids`` values."""
    data = await cast(web.Request, request).post()
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    return fields, [v for v in data.getall("ids", []) if isinstance(v, str)]


def _pages(ui: Ui) -> dict[str, type[View]]:
    """The read-only pages, by path."""

    class Overview(View):
        async def get(self, request: Request) -> Response:
            return self.html(overview_html(ui, viewer_of(request, ui.guard)))

    class Problems(View):
        async def get(self, request: Request) -> Response:
            query = dict(cast(web.Request, request).query)
            text, status = await problems_html(ui, viewer_of(request, ui.guard), query)
            return self.html(text, status=status)

    class Entity(View):
        async def get(self, request: Request, entity: str, entity_id: str) -> Response:
            text, status = await entity_html(ui, viewer_of(request, ui.guard), entity, entity_id)
            return self.html(text, status=status)

    class Integrations(View):
        async def get(self, request: Request) -> Response:
            return self.html(integrations_html(ui.config, viewer_of(request, ui.guard)))

    return {
        "/ui": Overview, "/ui/problems": Problems,
        "/ui/entity/{entity}/{entity_id}": Entity, "/ui/integrations": Integrations,
    }  # fmt: skip


def _single(ui: Ui, action: str) -> type[View]:
    """``POST /ui/<action>/{entity}/{entity_id}`` for one entity."""

    class Single(View):
        async def post(self, request: Request, entity: str, entity_id: str) -> Response:
            viewer = viewer_of(request, ui.guard)
            note_entities(request, [entity_id])
            fields, _ = await _form(request)
            take = fields.get("take") if action == "resolve" else None
            if action == "resolve" and take not in ("source", "target"):
                body = '<p class="err">take: source or target</p>'
                return self.html(page("Resolve", body, viewer), status=400)
            if action == "sync":
                outcome = await sync_one(ui, entity, entity_id)
            else:
                outcome = await control_many(ui, viewer, action, [(entity, entity_id)], take=take)
            back = f"/ui/entity/{entity}/{entity_id}"
            return self.html(outcome_html(action, outcome, viewer, back=back))

    Single.__name__ = f"Ui{action.capitalize()}"
    return Single


def _redrive_one(ui: Ui) -> type[View]:
    class RedriveOne(View):
        async def post(self, request: Request) -> Response:
            viewer = viewer_of(request, ui.guard)
            fields, _ = await _form(request)
            if not fields.get("letter"):
                body = '<p class="err">Name the dead letter: letter=partition/offset.</p>'
                return self.html(page("Redrive", body, viewer), status=400)
            outcome = await redrive_marks(ui, [fields["letter"]])
            return self.html(outcome_html("redrive", outcome, viewer, back="/ui/problems"))

    return RedriveOne


def _bulk(ui: Ui) -> type[View]:
    class Bulk(View):
        async def post(self, request: Request) -> Response:
            viewer = viewer_of(request, ui.guard)
            fields, ids = await _form(request)
            action = fields.get("do", "")
            try:
                refs = await targets_of(ui, fields, ids)
            except ValueError as exc:
                return self.html(page("Bulk", f'<p class="err">{esc(exc)}</p>', viewer), status=400)
            if action not in ("retry", "cancel", "redrive") or not refs:
                body = '<p class="err">Choose rows (or "all matching") and an action.</p>'
                return self.html(page("Bulk", body, viewer), status=400)
            outcome = await _bulk_outcome(ui, viewer, action, refs)
            note_entities(request, [ref.split("/", 1)[1] for ref in outcome.acted][:1000])
            return self.html(outcome_html(action, outcome, viewer, back="/ui/problems"))

    return Bulk


async def _bulk_outcome(ui: Ui, viewer: Any, action: str, refs: list[str]) -> Outcome:
    """Act on at most ``BULK_MAX`` refs; the rest, and refs of the wrong kind, are skipped."""
    over = [(ref, f"over the bulk limit of {BULK_MAX}") for ref in refs[BULK_MAX:]]
    refs = refs[:BULK_MAX]
    letters = [ref for ref in refs if ref.startswith("dlq/")]
    entities = [ref for ref in refs if not ref.startswith("dlq/")]
    if action == "redrive":
        outcome = await redrive_marks(ui, [ref[4:] for ref in letters])
        outcome.skipped += [(ref, "not a dead letter") for ref in entities]
    else:
        targets = [tuple(ref.split("/", 1)) for ref in entities]
        outcome = await control_many(ui, viewer, action, cast(list[tuple[str, str]], targets))
        outcome.skipped += [(ref, "a dead letter: redrive it instead") for ref in letters]
    outcome.skipped += over
    return outcome


def register_routes(app: faust.App, ui: Ui, guard: WebGuard) -> None:
    """Add the page's routes to ``app`` and grant each its least role."""
    for path, view in _pages(ui).items():
        app.page(path, name=f"ui:{path}")(view)
        guard.allow(path, GET="viewer")
    guard.login_pages["/ui"] = LOGIN_PAGE
    for action in _SINGLE:
        path = f"/ui/{action}/{{entity}}/{{entity_id}}"
        app.page(path, name=f"ui:{action}")(_single(ui, action))
        guard.allow(path, POST="operator")
    app.page("/ui/redrive", name="ui:redrive")(_redrive_one(ui))
    guard.allow("/ui/redrive", POST="operator")
    app.page("/ui/bulk", name="ui:bulk")(_bulk(ui))
    guard.allow("/ui/bulk", POST="admin")
