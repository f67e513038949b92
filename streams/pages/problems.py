"""``GET /ui/problems``: parked, failed, conflicts, loop suspects and dead letters in one list.

Filterable by entity, integration, status, failure kind and time range (last
seen), searchable by entity id or external id, newest first, paged. States
come from this worker's local tables (``index.find_problems``), dead letters
from the cached tail of the dead-letter topic. Operators get one button per
row; admins also a checkbox per row and the bulk actions.
"""

from __future__ import annotations

from cdcsync.streams.pages.context import Ui
from cdcsync.streams.pages.index import KINDS, PAGE_SIZE, STATUSES, Filters, Problem, find_problems
from cdcsync.streams.pages.layout import Viewer, esc, form, link, page, render_table, when

__all__ = ["problems_html", "row_actions"]


def _select(name: str, choices: list[str], current: str | None) -> str:
    options = ['<option value="">any</option>'] + [
        f'<option value="{esc(c)}"{" selected" if c == current else ""}>{esc(c)}</option>'
        for c in choices
    ]
    return f'<label>{esc(name)} <select name="{esc(name)}">{"".join(options)}</select></label> '


def _filter_form(ui: Ui, f: Filters) -> str:
    integrations = sorted({i for i in ui.integration_of().values() if i})
    return (
        '<form method="get" action="/ui/problems">'
        + _select("entity", sorted(ui.tables), f.entity)
        + _select("integration", integrations, f.integration)
        + _select("status", list(STATUSES), f.status)
        + _select("kind", list(KINDS), f.kind)
        + f'<label>id / external id <input name="q" value="{esc(f.q or "")}" size="12"></label> '
        + f'<label>since <input name="since" value="{esc(f.since or "")}" size="10" '
        'placeholder="-1h or ISO"></label> '
        + f'<label>until <input name="until" value="{esc(f.until or "")}" size="10"></label> '
        + "<button>Filter</button></form>"
    )


def row_actions(p: Problem, viewer: Viewer) -> str:
    """The buttons of one row for this viewer (none for a viewer)."""
    if not viewer.can("operator"):
        return ""
    if p.letter is not None:
        return form("/ui/redrive", "Redrive", fields={"letter": p.letter.mark})
    target = f"{esc(p.entity)}/{esc(p.entity_id)}"
    if p.status == "retrying":
        cancel = f"Cancel {p.entity} {p.entity_id}? Its parked events become dead letters."
        return form(f"/ui/retry/{target}", "Retry now", name="retry") + form(
            f"/ui/cancel/{target}", "Cancel", confirm=cancel
        )
    if p.status == "conflict":
        return link(f"/ui/entity/{p.entity}/{p.entity_id}", "Resolve…")
    return form(f"/ui/sync/{target}", "Sync now")


def _row(ui: Ui, p: Problem, viewer: Viewer) -> list[str]:
    external = "-"
    if p.external_id:
        href = ui.link_of(p.entity, p.external_id)
        external = f'<a href="{esc(href)}">{esc(p.external_id)}</a>' if href else esc(p.external_id)
    cells = [
        esc(p.entity),
        link(f"/ui/entity/{p.entity}/{p.entity_id}", p.entity_id or "?"),
        f'<span class="bad">{esc(p.status)}</span>',
        esc(p.kind),
        external,
        esc(p.reason[:200]),
        str(p.attempts),
        when(p.retry_at_ms),
        when(p.first_ms),
        when(p.last_ms),
        row_actions(p, viewer),
    ]
    if viewer.can("admin"):
        cells.insert(0, f'<input type="checkbox" name="ids" value="{esc(p.ref)}" form="bulk">')
    return cells


def _bulk_form(f: Filters, total: int) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
        for k, v in f.query().items()
        if k != "page"
    )
    ask = "Act on the selected rows (or every matching row, if ticked)?"
    return (
        f'<form id="bulk" method="post" class="act" action="/ui/bulk" data-confirm="{esc(ask)}">'
        f'{hidden}<label><input type="checkbox" name="all" value="1"> all {total} '
        "matching the filter</label> "
        '<button name="do" value="retry">Retry selected</button> '
        '<button name="do" value="cancel">Cancel selected</button> '
        '<button name="do" value="redrive">Redrive selected dead letters</button></form>'
    )


def _pager(f: Filters, pages: int) -> str:
    if pages <= 1:
        return ""
    prev = link("/ui/problems", "← newer", **f.query(page=f.page - 1)) if f.page > 1 else ""
    nxt = link("/ui/problems", "older →", **f.query(page=f.page + 1)) if f.page < pages else ""
    return f"<p>{prev} page {f.page} of {pages} {nxt}</p>"


async def problems_html(ui: Ui, viewer: Viewer, query: dict[str, str]) -> tuple[str, int]:
    """The problems page and its status (400 when a filter cannot be read)."""
    try:
        f = Filters.from_query(query)
    except ValueError as exc:
        return page("Problems", f'<p class="err">{esc(exc)}</p>', viewer), 400
    note = ""
    try:
        letters = await ui.sources.dead_letters() if f.status in (None, "dead_letter") else []
    except Exception as exc:  # Kafka unreachable: the states still list
        letters, note = [], f'<p class="err">Dead letters not read: {esc(exc)}</p>'
    found = find_problems(ui.tables, letters, f, integration_of=ui.integration_of())
    pages = max(-(-len(found) // PAGE_SIZE), 1)
    shown = found[(f.page - 1) * PAGE_SIZE : f.page * PAGE_SIZE]
    headers = ["entity", "id", "status", "kind", "external", "reason", "attempts",
               "next retry", "first seen", "last seen", ""]  # fmt: skip
    if viewer.can("admin"):
        headers.insert(0, "✓")
    rows = [_row(ui, p, viewer) for p in shown]
    body = (
        _filter_form(ui, f)
        + f"{note}<p>{len(found)} problem(s)</p>"
        + (_bulk_form(f, len(found)) if viewer.can("admin") else "")
        + render_table(headers, rows, empty="no problems match")
        + _pager(f, pages)
    )
    return page("Problems", body, viewer), 200
