"""The page's actions: retry now, cancel, resolve, sync now, redrive; one entity or in bulk.

Retry, cancel and resolve send the :class:`~cdcsync.schemas.envelope.Control`
record ``cdcsync parked retry|cancel`` and ``cdcsync conflicts resolve`` send,
through the entity's own topic, so the worker owning the entity applies it in
order with its changes; sync now publishes the current source row (a
trigger); redrive re-publishes dead letters (``operators.dlq``). Every answer
says how many were acted on and how many were skipped, and why.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cdcsync.errors import CdcsyncError
from cdcsync.schemas.envelope import Control
from cdcsync.streams.pages.context import Ui
from cdcsync.streams.pages.index import Filters, find_problems
from cdcsync.streams.pages.layout import Viewer, esc, link, page, render_table

__all__ = [
    "BULK_MAX",
    "Outcome",
    "control_many",
    "outcome_html",
    "redrive_marks",
    "skip_reason",
    "sync_one",
    "targets_of",
]

#: The most entities or dead letters one bulk action touches.
BULK_MAX = 10_000
_VERBS = {"retry": "Retry now", "cancel": "Cancel", "resolve": "Resolve", "sync": "Sync now",
          "redrive": "Redrive"}  # fmt: skip


@dataclass
class Outcome:
    """What an action did: the refs acted on, and the skipped ones with their reason."""

    acted: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        """Skipped refs counted by reason."""
        counts: dict[str, int] = {}
        for _ref, why in self.skipped:
            counts[why] = counts.get(why, 0) + 1
        return counts


def skip_reason(command: str, value: Mapping[str, object] | None) -> str | None:
    """Why ``command`` would do nothing for an entity in this state; ``None``: send it."""
    if value is None:
        return "not in this worker's state table (unknown here, or another worker owns it)"
    status = value.get("status", "synced")
    if command in ("retry", "cancel") and not value.get("parked"):
        return f"nothing parked (status {status})"
    if command == "resolve" and status != "conflict":
        return f"no conflict to resolve (status {status})"
    return None


async def control_many(
    ui: Ui,
    viewer: Viewer,
    command: str,
    targets: Iterable[tuple[str, str]],
    *,
    take: str | None = None,
) -> Outcome:
    """Send ``command`` for each (entity, id) whose state calls for it."""
    outcome = Outcome()
    for entity, entity_id in targets:
        ref = f"{entity}/{entity_id}"
        if entity not in ui.config.entities:
            outcome.skipped.append((ref, "unknown entity"))
            continue
        if (why := skip_reason(command, ui.state(entity, entity_id))) is not None:
            outcome.skipped.append((ref, why))
            continue
        control = Control.model_validate({
            "command": command, "take": take, "force": True,
            "requested_ms": int(time.time() * 1000), "by": f"web:{viewer.name}",
        })  # fmt: skip
        try:
            await ui.sources.send_control(entity, entity_id, control)
        except Exception as exc:
            outcome.skipped.append((ref, f"not sent: {type(exc).__name__}: {exc}"[:200]))
            continue
        outcome.acted.append(ref)
    return outcome


async def sync_one(ui: Ui, entity: str, entity_id: str) -> Outcome:
    """Publish the entity's current source row for the agent to sync."""
    outcome = Outcome()
    ref = f"{entity}/{entity_id}"
    if entity not in ui.config.entities:
        outcome.skipped.append((ref, "unknown entity"))
        return outcome
    try:
        where = await ui.sources.sync_now(entity, entity_id)
    except CdcsyncError as exc:
        outcome.skipped.append((ref, str(exc)[:200]))
    except Exception as exc:  # the database or Kafka unreachable
        outcome.skipped.append((ref, f"not sent: {type(exc).__name__}: {exc}"[:200]))
    else:
        outcome.acted.append(ref)
        outcome.notes.append(f"published to {where}")
    return outcome


async def redrive_marks(ui: Ui, marks: list[str]) -> Outcome:
    """Redrive the dead letters named ``partition/offset`` (from the cached tail)."""
    outcome = Outcome()
    letters = {entry.mark: entry for entry in await ui.sources.dead_letters()}
    chosen = []
    for mark in dict.fromkeys(marks):
        ref = f"dlq/{mark}"
        if mark not in letters:
            outcome.skipped.append((ref, "not among the recent dead letters"))
        elif mark in ui.redriven:
            outcome.skipped.append((ref, "already redriven from this page"))
        else:
            chosen.append(letters[mark])
    if chosen:
        try:
            report = await ui.sources.redrive(chosen)
        except Exception as exc:
            why = f"not sent: {type(exc).__name__}: {exc}"[:200]
            outcome.skipped += [(f"dlq/{e.mark}", why) for e in chosen]
            return outcome
        outcome.acted += [f"dlq/{e.mark}" for e in report.sent]
        outcome.skipped += [(f"dlq/{e.mark}", why) for e, why in report.skipped]
        ui.redriven.update(e.mark for e in report.sent)
        ui.sources.forget_letters()
    return outcome


async def targets_of(ui: Ui, form: Mapping[str, str], refs: list[str]) -> list[str]:
    """The refs of a bulk action: the ticked ones, or every row matching the form's filter."""
    if form.get("all") != "1":
        return refs
    f = Filters.from_query(form)
    letters = await ui.sources.dead_letters() if f.status in (None, "dead_letter") else []
    found = find_problems(ui.tables, letters, f, integration_of=ui.integration_of())
    return [p.ref for p in found]


def outcome_html(action: str, outcome: Outcome, viewer: Viewer, *, back: str) -> str:
    """The answer page of an action: acted, skipped by reason, and the refs."""
    verb = _VERBS.get(action, action)
    summary = f"{verb}: {len(outcome.acted)} acted on, {len(outcome.skipped)} skipped"
    reasons = render_table(
        ("skipped", "why"), [[str(n), esc(why)] for why, n in outcome.reasons().items()]
    )
    acted = ", ".join(esc(ref) for ref in outcome.acted[:100]) or "-"
    if len(outcome.acted) > 100:
        acted += f" … and {len(outcome.acted) - 100} more"
    notes = "".join(f"<p>{esc(n)}</p>" for n in outcome.notes)
    body = (
        f'<p class="{"msg" if outcome.acted else "err"}" id="outcome">{esc(summary)}</p>{notes}'
        f"<p>Acted on: {acted}</p>{reasons if outcome.skipped else ''}"
        '<p class="muted">The owning worker applies control records in order with the '
        "entity's other changes: reload the entity to see the result.</p>"
        f"<p>{link(back, 'Back')} · {link('/ui/problems', 'Problems')}</p>"
    )
    return page(verb, body, viewer)
