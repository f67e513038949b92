"""``GET /ui/entity/{entity}/{entity_id}``: one entity's state, link, conflict and timeline.

The state comes from the local table; the timeline (results, dead letters,
conflicts, operator actions) from the capped tails of their topics, on the
partition of the entity's key. Row values (parked records, dead letters'
originals, both versions of a conflict) are masked below the operator role.
"""

from __future__ import annotations

import logging
from typing import Any

from cdcsync.schemas.events import ConflictEvent
from cdcsync.streams.pages.context import Ui
from cdcsync.streams.pages.layout import Viewer, esc, form, page, render_table, when
from cdcsync.streams.pages.tails import Timeline

__all__ = ["conflict_html", "entity_html", "timeline_rows"]

log = logging.getLogger(__name__)


def _state_table(ui: Ui, entity: str, value: dict[str, Any]) -> str:
    external = value.get("external_id")
    href = ui.link_of(entity, external) if external else None
    shown = f'<a href="{esc(href)}">{esc(external)}</a>' if href else esc(external)
    rows = [
        ("status", f'<span id="status" class="{"" if value.get("status") == "synced" else "bad"}">'
                   f'{esc(value.get("status", "synced"))}</span>'),
        ("external object", shown),
        ("attempts", esc(value.get("attempts", 0))),
        ("next retry", when(value.get("retry_at_ms"))),
        ("held for", esc(value.get("hold"))),
        ("last error", esc(value.get("last_error"))),
        ("last seen", when(value.get("updated_ms"))),
        ("last applied", esc(_position(value))),
    ]  # fmt: skip
    return render_table(("", ""), [[esc(k), v] for k, v in rows])


def _position(value: dict[str, Any]) -> str | None:
    """Where the last applied event was read, ``[partition]@offset``."""
    if value.get("last_offset") is None:
        return None
    return f"[{value.get('last_partition')}]@{value['last_offset']}"


def _parked_table(value: dict[str, Any], viewer: Viewer) -> str:
    rows = []
    for p in value.get("parked") or ():
        where = f"{p.get('topic')}[{p.get('partition')}]@{p.get('offset')}"
        record = f"<code>{esc(viewer.shown(p.get('value')))}</code>"
        rows.append([when(p.get("received_ms")), esc(where), record])
    return render_table(("received", "position", "record"), rows, empty="nothing parked")


def conflict_html(event: ConflictEvent, viewer: Viewer, *, action: str) -> str:
    """Both versions side by side, the differing fields marked; resolve buttons for operators."""
    source, target = event.source_version or {}, event.target_version or {}
    rows = []
    for name in sorted(set(source) | set(target)):
        differs = source.get(name) != target.get(name)
        mark = ' class="diff"' if differs else ""
        rows.append(
            f"<tr{mark}><td>{esc(name)}{' ≠' if differs else ''}</td>"
            f"<td>{esc(viewer.shown(source.get(name)))}</td>"
            f"<td>{esc(viewer.shown(target.get(name)))}</td></tr>"
        )
    table = (
        "<table><thead><tr><th>field</th><th>source (PostgreSQL)</th><th>target (external)</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    buttons = ""
    if viewer.can("operator"):
        buttons = form(action, "Take source", fields={"take": "source"},
                       confirm="Overwrite the external object with the source row?") + " " + form(
            action, "Take target", fields={"take": "target"},
            confirm="Overwrite the source row with the external object?")  # fmt: skip
    return f"<p>Detected {when(event.detected_ms)}</p>{table}{buttons}"


def timeline_rows(timeline: Timeline, viewer: Viewer) -> list[tuple[int, list[str]]]:
    """Every event of the timeline as (time, cells), newest first."""
    rows: list[tuple[int, list[str]]] = []
    for r in timeline.results:
        where = f"{r.source.topic}[{r.source.partition}]@{r.source.offset}"
        rows.append((r.completed_ms, [when(r.completed_ms), "result", esc(r.action),
                                      esc(f"{r.reason} ({where})")]))  # fmt: skip
    for entry in timeline.letters:
        d = entry.letter
        detail = f"{d.error} · record: {viewer.shown(d.original.value)}"
        rows.append((d.failed_ms, [when(d.failed_ms), "dead letter", esc(d.reason), esc(detail)]))
    for c in timeline.conflicts:
        rows.append(
            (c.detected_ms, [when(c.detected_ms), "conflict", "park", "both sides changed"])
        )
    for a in timeline.actions:
        what = f"{a.action} by {a.actor} ({a.role}): {a.result} {a.status}"
        rows.append((a.at_ms, [when(a.at_ms), "operator action", esc(a.result), esc(what)]))
    rows.sort(key=lambda row: row[0], reverse=True)
    return rows


def _actions(entity: str, entity_id: str, value: dict[str, Any], viewer: Viewer) -> str:
    if not viewer.can("operator"):
        return ""
    target = f"{esc(entity)}/{esc(entity_id)}"
    buttons = [form(f"/ui/sync/{target}", "Sync now")]
    if value.get("parked"):
        cancel = "Cancel the parked events? They become dead letters."
        buttons = [form(f"/ui/retry/{target}", "Retry now", name="retry"),
                   form(f"/ui/cancel/{target}", "Cancel", confirm=cancel), *buttons]  # fmt: skip
    return "<p>" + " ".join(buttons) + "</p>"


async def entity_html(ui: Ui, viewer: Viewer, entity: str, entity_id: str) -> tuple[str, int]:
    """The entity page and its status (404 when this worker does not hold the entity)."""
    title = f"{entity} {entity_id}"
    value = ui.state(entity, entity_id)
    if entity not in ui.config.entities or value is None:
        body = ('<p class="err">Not in this worker\'s state table: unknown here, or another '
                "worker owns its partition (open its page there).</p>")  # fmt: skip
        return page(title, body, viewer), 404
    try:
        timeline = await ui.sources.timeline(entity, entity_id)
        note = ""
    except Exception as exc:  # Kafka unreachable: the state still shows
        log.warning("%s %s: timeline not read: %s", entity, entity_id, exc)
        timeline, note = Timeline(), f'<p class="err">Timeline not read: {esc(exc)}</p>'
    conflict = ""
    if value.get("status") == "conflict" and timeline.conflicts:
        action = f"/ui/resolve/{esc(entity)}/{esc(entity_id)}"
        conflict = "<h2>Conflict</h2>" + conflict_html(
            timeline.conflicts[-1], viewer, action=action
        )
    events = [cells for _, cells in timeline_rows(timeline, viewer)[:50]]
    body = (
        _state_table(ui, entity, value) + _actions(entity, entity_id, value, viewer) + conflict
        + f"<h2>Parked events</h2>{_parked_table(value, viewer)}"
        + f"<h2>Timeline</h2>{note}"
        + render_table(("when", "kind", "what", "detail"), events, empty="no recent events")
    )  # fmt: skip
    return page(title, body, viewer), 200
