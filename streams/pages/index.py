"""The problems in this worker's state tables, as rows: classify, filter, count. Pure, no I/O.

The tables hold each entity's :class:`~cdcsync.schemas.state.SyncState` as
JSON; the scan reads those dicts as they are (no model per row), so 100k
entities cost one pass over the local table, never a changelog read. Only
the rows of the page shown are turned into anything bigger.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdcsync.operators.dlq import Letter
from cdcsync.operators.timeparse import parse_time

__all__ = [
    "KINDS",
    "PAGE_SIZE",
    "STATUSES",
    "Counts",
    "Filters",
    "Problem",
    "count_states",
    "find_problems",
    "kind_of_letter",
    "kind_of_state",
    "letter_problem",
]

#: The statuses the list shows: three of the state's, and dead letters.
STATUSES = ("retrying", "permanently_failed", "conflict", "dead_letter")
#: Why a problem is one: the failure kinds of the filter.
KINDS = ("transient", "permanent", "config", "loop", "conflict")
PAGE_SIZE = 50
LOOP_HOLD = "loop_suspected"
_CONFIG_REASONS = frozenset({"configuration", "mapping", "schema"})


@dataclass(frozen=True)
class Problem:
    """One row of the problems list: an entity's state, or one dead letter."""

    entity: str
    entity_id: str
    status: str
    kind: str
    external_id: str | None
    reason: str
    attempts: int
    retry_at_ms: int | None
    first_ms: int | None
    last_ms: int | None
    #: For a dead letter: itself and where it sits (what a redrive needs).
    letter: Letter | None = None

    @property
    def ref(self) -> str:
        """What a checkbox of the list carries: ``entity/id`` or ``dlq/<partition>/<offset>``."""
        if self.letter is not None:
            return f"dlq/{self.letter.mark}"
        return f"{self.entity}/{self.entity_id}"


def kind_of_state(value: Mapping[str, Any]) -> str:
    """The failure kind of a problem state: loop, transient, conflict or permanent."""
    if value.get("hold") == LOOP_HOLD:
        return "loop"
    return {"retrying": "transient", "conflict": "conflict"}.get(
        value.get("status", ""), "permanent"
    )


def kind_of_letter(reason: str) -> str:
    """The failure kind of a dead letter's reason (``sink_transient``, ``mapping``, ...)."""
    if reason == "sink_transient":
        return "transient"
    return "config" if reason in _CONFIG_REASONS else "permanent"


@dataclass(frozen=True)
class Filters:
    """What the list is narrowed to; every field optional."""

    entity: str | None = None
    integration: str | None = None
    status: str | None = None
    kind: str | None = None
    q: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    page: int = 1
    #: The time range as typed (``-1h``, an ISO time), for links back to the same list.
    since: str | None = None
    until: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, now_ms: int | None = None) -> Filters:
        """Read the query string; an unreadable time raises ``ValueError`` naming it."""

        def text(name: str) -> str | None:
            value = (query.get(name) or "").strip()
            return value or None

        def when(name: str) -> int | None:
            value = text(name)
            if value is None:
                return None
            try:
                return parse_time(value, now_ms=now_ms)
            except Exception as exc:
                raise ValueError(f"{name}: {exc}") from None

        try:
            page = max(int(query.get("page") or 1), 1)
        except ValueError:
            page = 1
        return cls(
            entity=text("entity"), integration=text("integration"), status=text("status"),
            kind=text("kind"), q=text("q"), since_ms=when("since"), until_ms=when("until"),
            page=page, since=text("since"), until=text("until"),
        )  # fmt: skip

    def query(self, **changes: Any) -> dict[str, str]:
        """The query string of these filters (for links: the next page, a bulk action)."""
        values = {
            "entity": self.entity, "integration": self.integration, "status": self.status,
            "kind": self.kind, "q": self.q, "since": self.since, "until": self.until,
            "page": self.page,
        } | changes  # fmt: skip
        return {k: str(v) for k, v in values.items() if v not in (None, "")}

    def takes_time(self, last_ms: int | None) -> bool:
        """True when ``last_ms`` is inside the time range (a row without a time is kept)."""
        if last_ms is None:
            return True
        if self.since_ms is not None and last_ms < self.since_ms:
            return False
        return self.until_ms is None or last_ms < self.until_ms


def _state_problems(entity: str, items: Iterable[tuple[Any, Any]], f: Filters) -> Iterator[Problem]:
    """The problem states of one table, filtered; a hot loop over raw dicts."""
    wanted_status = f.status
    q = f.q
    for entity_id, value in items:
        if not value:
            continue
        status = value.get("status")
        if status not in ("retrying", "permanently_failed", "conflict"):
            continue
        if wanted_status is not None and status != wanted_status:
            continue
        kind = kind_of_state(value)
        if f.kind is not None and kind != f.kind:
            continue
        external_id = value.get("external_id")
        if q is not None and q not in str(entity_id) and q != external_id:
            continue
        last = value.get("updated_ms")
        if not f.takes_time(last):
            continue
        parked = value.get("parked") or ()
        yield Problem(
            entity=entity, entity_id=str(entity_id), status=status, kind=kind,
            external_id=external_id, reason=value.get("last_error") or value.get("hold") or "",
            attempts=value.get("attempts") or 0, retry_at_ms=value.get("retry_at_ms"),
            first_ms=parked[0].get("received_ms") if parked else last, last_ms=last,
        )  # fmt: skip


def letter_problem(entry: Letter) -> Problem:
    """A dead letter as a row of the list."""
    letter = entry.letter
    return Problem(
        entity=letter.entity, entity_id=letter.entity_id or "", status="dead_letter",
        kind=kind_of_letter(letter.reason), external_id=None,
        reason=f"{letter.reason}: {letter.error}", attempts=letter.attempts, retry_at_ms=None,
        first_ms=letter.failed_ms, last_ms=letter.failed_ms, letter=entry,
    )  # fmt: skip


def _letter_problems(
    letters: Iterable[Letter], f: Filters, entities: set[str]
) -> Iterator[Problem]:
    if f.status not in (None, "dead_letter"):
        return
    for entry in letters:
        letter = entry.letter
        if letter.entity not in entities:
            continue
        if f.q is not None and f.q not in (letter.entity_id or ""):
            continue
        problem = letter_problem(entry)
        if (f.kind is None or problem.kind == f.kind) and f.takes_time(problem.last_ms):
            yield problem


def find_problems(
    tables: Mapping[str, Any],
    letters: Iterable[Letter],
    f: Filters,
    *,
    integration_of: Mapping[str, str | None],
) -> list[Problem]:
    """Every problem matching ``f``, newest first (by last seen)."""
    entities = {
        name
        for name in tables
        if (f.entity is None or name == f.entity)
        and (f.integration is None or integration_of.get(name) == f.integration)
    }
    found: list[Problem] = []
    if f.status != "dead_letter":
        for name in entities:
            table = tables[name]
            found.extend(_state_problems(name, getattr(table, "data", table).items(), f))
    found.extend(_letter_problems(letters, f, entities))
    found.sort(key=lambda p: p.last_ms or 0, reverse=True)
    return found


@dataclass
class Counts:
    """One entity's states by status, in this worker's table."""

    synced: int = 0
    deleted: int = 0
    retrying: int = 0
    #: Events queued behind failures (each retrying entity holds one or more).
    pending: int = 0
    permanently_failed: int = 0
    conflict: int = 0
    loop: int = 0
    last_error: str | None = None
    last_error_ms: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def count_states(table: Any) -> Counts:
    """Count one table's states in one pass; the newest error is kept."""
    counts = Counts()
    for value in getattr(table, "data", table).values():
        if not value:
            continue
        status = value.get("status", "synced")
        counts.by_status[status] = counts.by_status.get(status, 0) + 1
        if status in ("synced", "deleted"):
            continue
        counts.pending += len(value.get("parked") or ())
        if value.get("hold") == LOOP_HOLD:
            counts.loop += 1
        when = value.get("updated_ms") or 0
        if value.get("last_error") and when >= counts.last_error_ms:
            counts.last_error, counts.last_error_ms = value["last_error"], when
    for status in ("synced", "deleted", "retrying", "permanently_failed", "conflict"):
        setattr(counts, status, counts.by_status.get(status, 0))
    return counts
