"""Control records for one entity: retry or cancel its parked events, resolve a conflict.

They travel through the entity's own topic, keyed like its changes, so the
worker that owns the entity applies them in order with everything else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import faust

from cdcsync.agents.apply import Applier
from cdcsync.agents.associations import ChildKeys, finalize, record_child
from cdcsync.agents.change import Outcome, RawEvent, now_ms
from cdcsync.agents.emit import Emitter
from cdcsync.agents.parking import release, to_bytes, to_raw, unpark
from cdcsync.agents.state import StateStore, next_state
from cdcsync.errors import SinkError, SinkTransientError
from cdcsync.schemas.config import EntityConfig
from cdcsync.schemas.envelope import ChangeEvent, Control, parse_change
from cdcsync.schemas.state import SyncState
from cdcsync.sinks.base import counting

__all__ = ["Controls", "RunChange", "send_due_retries", "sweep_parked"]


class RunChange(Protocol):
    """Runs one parked change again; True when it ended (result or dead letter), False
    when it was parked again."""

    async def __call__(
        self,
        raw: RawEvent,
        change: ChangeEvent,
        state: SyncState | None,
        *,
        attempt: int,
        errors: list[str],
    ) -> bool: ...


@dataclass(frozen=True)
class Controls:
    """Applies control records to one entity; takes only what the controls touch."""

    entity: str
    config: EntityConfig
    state: StateStore
    emit: Emitter
    applier: Applier
    #: Reruns a parked change through the agent's attempt (for retries).
    run: RunChange
    child_keys: ChildKeys | None = None

    async def apply(self, entity_id: str, control: Control, raw: RawEvent) -> None:
        """Apply a retry, cancel, resolve or child record, in order with the entity's events."""
        state = self.state.load(entity_id)
        match control.command:
            case "resolve":
                await self._resolve(entity_id, state, control, raw)
            case "child":
                await self._child(entity_id, state, control, raw)
            case "cancel" if state is not None and state.parked:
                await self._cancel(entity_id, state, control)
            case "retry" if state is not None and state.parked:
                if state.hold is not None and control.force:
                    state = release(state)  # an operator looked: writes may resume
                    self.state.store(entity_id, state)
                if state.hold is None and (control.force or (state.retry_at_ms or 0) <= now_ms()):
                    await self._redrive(entity_id, state)
                # else held for an operator, or a duplicate or early tick: not due yet

    async def _cancel(self, entity_id: str, state: SyncState, control: Control) -> None:
        """Dead-letter every parked event of the entity, in order; the entity stops retrying."""
        for i, parked in enumerate(state.parked):
            await self.emit.dead_letter(
                to_raw(parked),
                entity_id,
                "cancelled",
                f"cancelled by an operator ({control.by})",
                state.attempts if i == 0 else 0,
                details={"errors": state.errors if i == 0 else []},
            )
        cancelled = release(unpark(state)).model_copy(
            update={"status": "permanently_failed", "last_error": "cancelled by an operator"}
        )
        self.state.store(entity_id, cancelled)
        await self.emit.notify(entity_id, "info", f"{len(state.parked)} parked event(s) cancelled")

    async def _child(
        self, entity_id: str, state: SyncState | None, control: Control, raw: RawEvent
    ) -> None:
        """A child was synced or removed: record it, and finalize once all children are synced."""
        if control.child_entity is None or control.child_id is None:
            await self.emit.dead_letter(
                raw, entity_id, "schema", "a child control must name child_entity and child_id", 1
            )
            return
        updated = record_child(state or SyncState(), control)
        self.state.store(entity_id, updated)
        with counting(self.entity, entity_id) as counter:
            try:
                done = await finalize(
                    updated,
                    entity_id=entity_id,
                    config=self.config,
                    child_keys=self.child_keys,
                    sink=self.applier.sink,
                    version_of=self.applier.version_of,
                )
            except SinkError as exc:
                # The next child's record finalizes again; this one can be redriven from the DLQ.
                transient = isinstance(exc, SinkTransientError)
                reason = "sink_transient" if transient else "sink_permanent"
                await self.emit.dead_letter(raw, entity_id, reason, exc, 1)
                return
        if done is None:
            why = f"child {control.child_entity} {control.child_id} recorded"
            outcome = Outcome("skip", why, updated.external_id)
        else:
            action, why, finalized = done
            self.state.store(entity_id, finalized)
            outcome = Outcome(action, why, finalized.external_id)
        await self.emit.result(entity_id, None, outcome, raw, calls=counter.calls, attempts=1)

    async def _resolve(
        self, entity_id: str, state: SyncState | None, control: Control, raw: RawEvent
    ) -> None:
        """An operator settles a conflict parked under the manual policy."""
        if state is None or state.status != "conflict" or state.external_id is None:
            status = state.status if state else "unknown"
            why = f"resolve: no conflict to resolve (status {status})"
            await self.emit.result(
                entity_id, None, Outcome("skip", why, None), raw, calls=0, attempts=1
            )
            return
        with counting(self.entity, entity_id) as counter:
            try:
                outcome = await self.applier.resolve(
                    entity_id, state.external_id, control.take or "source"
                )
            except SinkError as exc:
                await self.emit.dead_letter(raw, entity_id, "sink_permanent", exc, 1)
                return
        resolved = state.model_copy(update={"status": "synced"})
        self.state.store(entity_id, next_state(resolved, outcome, raw.position, now_ms=now_ms()))
        await self.emit.result(entity_id, None, outcome, raw, calls=counter.calls, attempts=1)

    async def _redrive(self, entity_id: str, state: SyncState) -> None:
        """Retry the parked events in order until one fails again or none is left."""
        attempt, errors = state.attempts + 1, list(state.errors)
        remaining = list(state.parked)
        while remaining:
            raw = to_raw(remaining[0])
            current = self.state.load(entity_id) or SyncState()
            parsed = parse_change(raw.key, raw.value, key_field=self.config.key)
            if isinstance(parsed, ChangeEvent):
                if not await self.run(raw, parsed, current, attempt=attempt, errors=errors):
                    return  # parked again, with the rest still queued behind it
            remaining = remaining[1:]
            after = self.state.load(entity_id) or SyncState()
            self.state.store(entity_id, after.model_copy(update={"parked": remaining}))
            attempt, errors = 1, []
        self.state.store(entity_id, unpark(self.state.load(entity_id) or SyncState()))


async def send_due_retries(state: StateStore, topic: faust.TopicT, sent: dict[str, int]) -> int:
    """Send a retry record for each local parked entity whose retry is due.

    Reads the store's index of parked entities (``StateStore.due``), checking each due
    one against the table. ``sent`` remembers the ``retry_at_ms`` already signalled per
    entity, so a slow consumer does not get one retry record per tick for the same due
    time.
    """
    due = 0
    now = now_ms()
    for entity_id, retry_at in list(state.due.items()):
        if retry_at > now or sent.get(entity_id) == retry_at:
            continue
        value = state.table.get(entity_id)
        state.note_due(entity_id, value)  # the table is the truth
        if entity_id not in state.due or state.due[entity_id] != retry_at:
            continue
        key, _ = to_bytes(SyncState.model_validate(value).parked[0])
        control = Control(command="retry", requested_ms=now)
        await topic.send(key=key, value=control.model_dump_json().encode())
        sent[entity_id] = retry_at
        due += 1
    return due


async def sweep_parked(state: StateStore, *, chunk: int = 500) -> int:
    """Index the parked entities already in the table (recovered from its changelog after a
    start or a rebalance, so never stored here); yields to the loop every ``chunk`` keys.
    Returns how many are indexed."""
    keys = list(state.table.keys())
    for start in range(0, len(keys), chunk):
        for entity_id in keys[start : start + chunk]:
            state.note_due(entity_id, state.table.get(entity_id))
        await asyncio.sleep(0)
    return len(state.due)
