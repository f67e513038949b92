"""The entity's sync state: the next state after an outcome (pure), and the table it lives in.

State lives in a Faust table, changelog-backed, keyed by entity id; the
``refs`` global table maps each external id back to the entity's key for the
poller. Writes go to the changelog partition of the record being processed,
so each task names its record first (:func:`bind_event`).
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.streams import _current_event
from faust.types import EventT

from cdcsync.agents.change import GONE, SYNCED, Outcome, RawEvent
from cdcsync.schemas.envelope import Origin
from cdcsync.schemas.events import SourcePosition
from cdcsync.schemas.state import SyncState, WriteMark, retries

__all__ = ["WRITE_MARKS", "StateStore", "bind_event", "next_state"]

#: External writes remembered per entity, for the loop guard (enough for any sane limit).
WRITE_MARKS = 32
#: Outcomes that wrote to the external system.
WRITTEN = frozenset({"create", "update", "delete", "mark_target"})


def _timer_retries(value: dict[str, Any] | None) -> bool:
    """Parked behind a transient failure, not held for an operator: the timer retries it."""
    if not value:
        return False
    return retries(value.get("status"), bool(value.get("parked")), bool(value.get("hold")))


def next_state(
    state: SyncState | None,
    outcome: Outcome,
    position: SourcePosition,
    *,
    now_ms: int,
    origin: Origin | None = None,
) -> SyncState:
    """The state after ``outcome`` of a change from ``origin``; the position never moves back.

    A write, a pull or a delete leaves both sides agreeing, and so does a source change
    with nothing to push: no source change is pending after them.
    """
    base = state or SyncState()
    update: dict[str, Any] = {
        "updated_ms": now_ms,
        "attempts": 0,
        "errors": [],
        "retry_at_ms": None,
    }
    if not base.seen(position.partition, position.offset):
        # Never move the position back: a redelivered record must not make the
        # records after it look unapplied.
        update |= {"last_partition": position.partition, "last_offset": position.offset}
    if outcome.action in GONE:
        update |= {
            "status": "deleted",
            "external_id": None,
            "row_id": None,
            "payload_hash": None,
            "pulled_ms": None,
            "last_error": None,
        }
    elif outcome.action in SYNCED:
        update |= {"status": "synced", "external_id": outcome.external_id, "last_error": None}
        if outcome.version is not None or outcome.action != "mark_source":
            update["row_id"] = outcome.version
        if outcome.payload_hash is not None:
            update["payload_hash"] = outcome.payload_hash
        if outcome.written_ms is not None:
            update["pulled_ms"] = outcome.written_ms
        # Versions this entity moved past (ours or pulled): a poll record still
        # carrying one of them is stale and must not be pulled back.
        gone = [
            v
            for v in (base.row_id, outcome.superseded)
            if v is not None and v != update.get("row_id", base.row_id)
        ]
        if gone:
            update["superseded"] = [*base.superseded, *gone][-8:]
    elif outcome.action == "park":
        update |= {"status": "conflict", "external_id": outcome.external_id}
    else:
        if base.status == "retrying":
            update["status"] = "synced"  # a skip ends the retry too
        if outcome.version is not None and outcome.external_id == base.external_id:
            update["row_id"] = outcome.version  # a version adopted without a write
    if (
        outcome.action in SYNCED
        or outcome.action in GONE
        or (outcome.action == "skip" and origin == "source")
    ):
        update["source_pending"] = False
    if outcome.action in WRITTEN:
        # For the loop guard (agents.decide.write_loops).
        mark = WriteMark(at_ms=now_ms, digest=outcome.payload_hash)
        update["writes"] = [*base.writes, mark][-WRITE_MARKS:]
    return base.model_copy(update=update)


def bind_event(event: EventT) -> None:
    """Make ``event`` the current one for table writes in this task.

    Faust sends a table write to the changelog partition of the *current*
    event. Batches hold events of several partitions processed in concurrent
    tasks, so each task names its own event before it writes state.
    """
    _current_event.set(weakref.ref(event))


class StateStore:
    """One entity's state table and its external-id references."""

    def __init__(self, table: Any, refs: Any) -> None:
        #: faust Table[str, dict]: entity id -> SyncState as JSON.
        self.table = table
        #: faust GlobalTable[str, str]: external id -> entity key (JSON text).
        self.refs = refs
        #: Parked entities a timer retries: entity id -> retry_at_ms, kept by every
        #: :meth:`store`, so the timer need not decode the whole table on each tick.
        self.due: dict[str, int] = {}

    def load(self, entity_id: str) -> SyncState | None:
        """The entity's sync state, or ``None`` if it was never seen."""
        raw_state = self.table.get(entity_id)
        return SyncState.model_validate(raw_state) if raw_state else None

    def store(self, entity_id: str, state: SyncState) -> None:
        """Write the state back to the table (and so to its changelog)."""
        # Write the value back: Faust only logs assignments to the changelog.
        self.table[entity_id] = state.model_dump(mode="json")
        if state.parked_for_retry:
            self.due[entity_id] = state.retry_at_ms or 0
        else:
            self.due.pop(entity_id, None)

    def note_due(self, entity_id: str, value: dict[str, Any] | None) -> None:
        """Index or unindex ``entity_id`` for the retry timer from its stored JSON value."""
        if _timer_retries(value):
            assert value is not None
            self.due[entity_id] = value.get("retry_at_ms") or 0
        else:
            self.due.pop(entity_id, None)

    def link(self, raw: RawEvent, old: SyncState | None, new: SyncState) -> None:
        """Keep the external id -> entity key reference the poller needs."""
        old_id = old.external_id if old else None
        if old_id and old_id != new.external_id and old_id in self.refs:
            del self.refs[old_id]
        if new.external_id and new.external_id != old_id and raw.key is not None:
            self.refs[new.external_id] = raw.key.decode()
