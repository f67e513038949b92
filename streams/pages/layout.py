"""The frame of every page: head, navigation, who is logged in, and the few lines of script.

Pages are plain strings built with :func:`esc` around every value that comes
from data, so nothing a row holds can become markup. Forms that change state
are ``<form method="post" class="act">``: the script sends them with the
session's CSRF token in ``X-CSRF-Token`` (the guard's check), asks first when
the form has ``data-confirm``, and shows the answer page.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

from aiohttp import web

from cdcsync.streams.auth import rank
from cdcsync.streams.guard import SESSION_COOKIE, WebGuard, principal_of

__all__ = [
    "MASK",
    "Viewer",
    "esc",
    "form",
    "link",
    "page",
    "render_table",
    "viewer_of",
    "when",
]

MASK = "***"

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#23395d;color:#fff;padding:.5em 1em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}header .who{margin-left:auto}
main{padding:1em}table{border-collapse:collapse;background:#fff;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eef}td.num{text-align:right}.bad{color:#b00020;font-weight:600}
.diff{background:#fff3b0}.muted{color:#777}form.inline{display:inline}
button{cursor:pointer}.msg{background:#e8f4e8;border:1px solid #9c9;padding:.5em}
.err{background:#fde8e8;border:1px solid #c99;padding:.5em}
"""

_SCRIPT = """
document.addEventListener('submit', async (ev) => {
  const f = ev.target;
  if (!f.classList.contains('act')) return;
  ev.preventDefault();
  if (f.dataset.confirm && !window.confirm(f.dataset.confirm)) return;
  const csrf = document.querySelector('meta[name=csrf-token]').content;
  const body = new URLSearchParams(new FormData(f, ev.submitter));
  const r = await fetch(f.action, {method: 'POST', body: body,
    headers: {'X-CSRF-Token': csrf}, credentials: 'same-origin'});
  if (f.dataset.then && r.ok) { location.href = f.dataset.then; return; }
  const text = await r.text();
  if ((r.headers.get('Content-Type') || '').includes('html')) {
    document.open(); document.write(text); document.close();
  } else { alert(r.status + ' ' + text); }
});
"""


@dataclass(frozen=True)
class Viewer:
    """Who looks at the page: name, role, and the CSRF token of the session (if any)."""

    name: str
    role: str
    csrf: str = ""

    def can(self, role: str) -> bool:
        """True when this viewer's role includes ``role``."""
        return rank(self.role) >= rank(role) > 0

    def shown(self, value: Any) -> str:
        """A row value as this viewer may see it: masked below operator."""
        return str(value) if self.can("operator") else MASK


def viewer_of(request: Any, guard: WebGuard) -> Viewer:
    """The caller the guard let through, with its session's CSRF token."""
    who = principal_of(request)
    if who is None:
        return Viewer("?", "none")
    csrf = ""
    if who.via == "session":
        cookie = cast(web.Request, request).cookies.get(SESSION_COOKIE, "")
        session = guard.sessions.get(cookie)
        csrf = session.csrf_token if session is not None else ""
    return Viewer(who.name, who.role, csrf)


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML (``None`` shows as a dash)."""
    return "-" if value is None else html.escape(str(value), quote=True)


def when(ms: int | None) -> str:
    """A UTC time of epoch milliseconds, to the second."""
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))


def link(href: str, text: Any, **query: Any) -> str:
    """``<a>`` to ``href`` with an optional query string."""
    params = {k: v for k, v in query.items() if v not in (None, "")}
    target = f"{href}?{urlencode(params)}" if params else href
    return f'<a href="{esc(target)}">{esc(text)}</a>'


def form(
    action: str,
    label: str,
    *,
    fields: Mapping[str, str] | None = None,
    confirm: str | None = None,
    name: str | None = None,
) -> str:
    """A one-button POST form (sent by the page's script with the CSRF token)."""
    hidden = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in (fields or {}).items()
    )
    ask = f' data-confirm="{esc(confirm)}"' if confirm else ""
    named = f' name="{esc(name)}"' if name else ""
    return (
        f'<form method="post" class="act inline" action="{esc(action)}"{ask}>{hidden}'
        f"<button{named}>{esc(label)}</button></form>"
    )


def render_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str = "nothing here"
) -> str:
    """A table of cells that are already HTML (escape values with :func:`esc` first)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="muted">{esc(empty)}</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str, viewer: Viewer | None, *, refresh_s: int | None = None) -> str:
    """A whole page: head, navigation (when someone is logged in), the body."""
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    csrf = f'<meta name="csrf-token" content="{esc(viewer.csrf)}">' if viewer else ""
    nav = ""
    if viewer is not None:
        logout = form("/logout", "Log out")
        logout = logout.replace('class="act inline"', 'class="act inline" data-then="/ui"')
        nav = (
            '<header><a href="/ui">Overview</a><a href="/ui/problems">Problems</a>'
            '<a href="/ui/integrations">Integrations</a>'
            f'<span class="who">{esc(viewer.name)} ({esc(viewer.role)}) {logout}</span></header>'
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}{csrf}'
        f"<title>{esc(title)} · cdcsync</title><style>{_STYLE}</style></head>"
        f"<body>{nav}<main><h1>{esc(title)}</h1>{body}</main><script>{_SCRIPT}</script>"
        "</body></html>"
    )
