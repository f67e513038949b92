"""``GET /ui``: per entity and integration, how many are synced, parked, failed, in conflict.

Counts come from one pass over each local state table; dead letters from the
worker's metrics (since it started), consumer lag from the consumer's own
positions. The page reloads itself every ``REFRESH_S`` seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdcsync import metrics
from cdcsync.streams.pages.context import Ui
from cdcsync.streams.pages.index import Counts, count_states
from cdcsync.streams.pages.layout import Viewer, esc, link, page, render_table

__all__ = ["REFRESH_S", "dead_letter_counts", "overview_html"]

REFRESH_S = 10
_HEADERS = (
    "entity", "integration", "synced", "parked", "pending events", "permanently failed",
    "conflicts", "dead letters", "loop suspects", "consumer lag", "last error",
)  # fmt: skip


def dead_letter_counts() -> dict[str, int]:
    """Dead letters per entity this worker sent since it started (``cdcsync_dead_letters``)."""
    counts: dict[str, int] = {}
    for family in metrics.DEAD_LETTERS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                entity = sample.labels["entity"]
                counts[entity] = counts.get(entity, 0) + int(sample.value)
    return counts


def _lag_by_topic(ui: Ui) -> dict[str, int] | None:
    try:
        lags = ui.lag()
    except Exception:  # the consumer is not running yet
        return None
    by_topic: dict[str, int] = {}
    for (topic, _partition), lag in lags.items():
        by_topic[topic] = by_topic.get(topic, 0) + lag
    return by_topic


def _problem_link(entity: str, count: int, **query: Any) -> str:
    if not count:
        return "0"
    return f'<span class="bad">{link("/ui/problems", count, entity=entity, **query)}</span>'


def _row(
    ui: Ui, name: str, counts: Counts, letters: int, lag: Mapping[str, int] | None
) -> list[str]:
    topic = ui.config.entities[name].topic
    lag_text = "-" if lag is None else str(lag.get(topic, 0))
    return [
        link("/ui/problems", name, entity=name),
        esc(ui.config.entities[name].target.integration or "(inline)"),
        str(counts.synced),
        _problem_link(name, counts.retrying, status="retrying"),
        str(counts.pending),
        _problem_link(name, counts.permanently_failed, status="permanently_failed"),
        _problem_link(name, counts.conflict, status="conflict"),
        _problem_link(name, letters, status="dead_letter"),
        _problem_link(name, counts.loop, kind="loop"),
        lag_text,
        esc((counts.last_error or "")[:120]) or "-",
    ]


def _integration_rows(
    ui: Ui, per_entity: dict[str, Counts], letters: dict[str, int]
) -> list[list[str]]:
    totals: dict[str, list[int]] = {}
    for name, counts in per_entity.items():
        key = ui.config.entities[name].target.integration or "(inline)"
        row = totals.setdefault(key, [0] * 6)
        values = (counts.synced, counts.retrying, counts.permanently_failed, counts.conflict,
                  letters.get(name, 0), counts.loop)  # fmt: skip
        for i, value in enumerate(values):
            row[i] += value
    return [[esc(k), *(str(v) for v in row)] for k, row in sorted(totals.items())]


def overview_html(ui: Ui, viewer: Viewer) -> str:
    """The overview page."""
    per_entity = {name: count_states(table) for name, table in ui.tables.items()}
    letters = dead_letter_counts()
    lag = _lag_by_topic(ui)
    rows = [_row(ui, n, c, letters.get(n, 0), lag) for n, c in sorted(per_entity.items())]
    by_integration = render_table(
        ("integration", "synced", "parked", "permanently failed", "conflicts", "dead letters",
         "loop suspects"),
        _integration_rows(ui, per_entity, letters),
    )  # fmt: skip
    body = (
        f'<p class="muted">This worker\'s partitions; refreshes every {REFRESH_S} s. Dead letters '
        "count since the worker started.</p>"
        f"<h2>Entities</h2>{render_table(_HEADERS, rows, empty='no entities configured')}"
        f"<h2>Integrations</h2>{by_integration}"
    )
    return page("Overview", body, viewer, refresh_s=REFRESH_S)
