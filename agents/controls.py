"""Control records for one entity: retry or cancel its parked events, resolve a conflict.

They travel through the entity's own topic, keyed like its changes, so the
worker that owns the entity applies them in order with everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

from cdcsync.agents.apply import Outcome
from cdcsync.agents.associations import finalize, record_child
from cdcsync.agents.emit import RawEvent, now_ms
from cdcsync.agents.parking import to_bytes, to_parked, unpark
from cdcsync.errors import SinkError, SinkTransientError
from cdcsync.schemas.envelope import ChangeEvent, Control, parse_change
from cdcsync.schemas.events import SourcePosition
from cdcsync.schemas.state import ParkedEvent, SyncState
from cdcsync.sinks.base import CallCounter, call_counter

if TYPE_CHECKING:
    from cdcsync.agents.sync import EntitySync

__all__ = ["apply_control", "parked_event", "send_due_retries"]


def parked_event(raw: RawEvent) -> ParkedEvent:
    """The record as the entity's state keeps it while it waits."""
    p = raw.position
    return to_parked(
        raw.key,
        raw.value,
        topic=p.topic,
        partition=p.partition,
        offset=p.offset,
        received_ms=raw.received_ms,
    )


async def apply_control(sync: EntitySync, entity_id: str, control: Control, raw: RawEvent) -> None:
    """Apply a retry, cancel or resolve record to one entity, in order with its events."""
    state = sync.load(entity_id)
    if control.command == "resolve":
        await _resolve(sync, entity_id, state, control, raw)
        return
    if control.command == "child":
        await _child(sync, entity_id, state, control, raw)
        return
    if state is None or not state.parked:
        return
    if control.command == "cancel":
        for i, parked in enumerate(state.parked):
            key, value = to_bytes(parked)
            raw = RawEvent(
                key,
                value,
                SourcePosition(
                    topic=parked.topic, partition=parked.partition, offset=parked.offset
                ),
                parked.received_ms,
            )
            await sync.emit.dead_letter(
                raw,
                entity_id,
                "cancelled",
                f"cancelled by an operator ({control.by})",
                state.attempts if i == 0 else 0,
                details={"errors": state.errors if i == 0 else []},
            )
        sync.store(
            entity_id,
            unpark(state).model_copy(
                update={
                    "status": "permanently_failed",
                    "last_error": "cancelled by an operator",
                }
            ),
        )
        await sync.emit.notify(entity_id, "info", f"{len(state.parked)} parked event(s) cancelled")
        return
    if not control.force and (state.retry_at_ms or 0) > now_ms():
        return  # a duplicate or early tick: the retry is not due yet
    await _redrive(sync, entity_id, state)


async def _child(
    sync: EntitySync, entity_id: str, state: SyncState | None, control: Control, raw: RawEvent
) -> None:
    """A child was synced or removed: record it, and finalize once all children are synced."""
    if control.child_entity is None or control.child_id is None:
        await sync.emit.dead_letter(
            raw, entity_id, "schema", "a child control must name child_entity and child_id", 1
        )
        return
    updated = record_child(state or SyncState(), control)
    sync.store(entity_id, updated)
    counter = CallCounter(entity=sync.entity, entity_id=entity_id)
    token = call_counter.set(counter)
    try:
        done = await finalize(sync, entity_id, updated)
    except SinkError as exc:
        # The next child's record finalizes again; this one can be redriven from the DLQ.
        reason = "sink_transient" if isinstance(exc, SinkTransientError) else "sink_permanent"
        await sync.emit.dead_letter(raw, entity_id, reason, exc, 1)
        return
    finally:
        call_counter.reset(token)
    action, why = done or ("skip", f"child {control.child_entity} {control.child_id} recorded")
    outcome = Outcome(action, why, updated.external_id)  # type: ignore[arg-type]
    await sync.emit.result(entity_id, None, outcome, raw, calls=counter.calls, attempts=1)


async def _resolve(
    sync: EntitySync, entity_id: str, state: SyncState | None, control: Control, raw: RawEvent
) -> None:
    """An operator settles a conflict parked under the manual policy."""
    if state is None or state.status != "conflict" or state.external_id is None:
        status = state.status if state else "unknown"
        await sync.emit.result(
            entity_id,
            None,
            Outcome("skip", f"resolve: no conflict to resolve (status {status})", None),
            raw,
            calls=0,
            attempts=1,
        )
        return
    counter = CallCounter(entity=sync.entity, entity_id=entity_id)
    token = call_counter.set(counter)
    try:
        outcome = await sync.applier.resolve(entity_id, state.external_id, control.take or "source")
    except SinkError as exc:
        await sync.emit.dead_letter(raw, entity_id, "sink_permanent", exc, 1)
        return
    finally:
        call_counter.reset(token)
    resolved = state.model_copy(update={"status": "synced"})
    new_state = sync.next_state(resolved, outcome, raw.position)
    sync.store(entity_id, new_state)
    await sync.emit.result(entity_id, None, outcome, raw, calls=counter.calls, attempts=1)


async def _redrive(sync: EntitySync, entity_id: str, state: SyncState) -> None:
    """Retry the parked events in order until one fails again or none is left."""
    attempt, errors = state.attempts + 1, list(state.errors)
    remaining = list(state.parked)
    while remaining:
        head = remaining[0]
        key, value = to_bytes(head)
        raw = RawEvent(
            key,
            value,
            SourcePosition(topic=head.topic, partition=head.partition, offset=head.offset),
            head.received_ms,
        )
        current = sync.load(entity_id) or SyncState()
        parsed = parse_change(key, value, key_field=sync.config.key)
        if isinstance(parsed, ChangeEvent):
            if not await sync.run(raw, parsed, current, attempt=attempt, errors=errors):
                return  # parked again, with the rest still queued behind it
        remaining = remaining[1:]
        after = sync.load(entity_id) or SyncState()
        sync.store(entity_id, after.model_copy(update={"parked": remaining}))
        attempt, errors = 1, []
    sync.store(entity_id, unpark(sync.load(entity_id) or SyncState()))


async def send_due_retries(sync: EntitySync, topic: faust.TopicT, sent: dict[str, int]) -> int:
    """Send a retry record for each local parked entity whose retry is due."""
    due = 0
    now = now_ms()
    for entity_id, value in list(sync.table.items()):
        if not value or value.get("status") != "retrying" or not value.get("parked"):
            continue
        retry_at = value.get("retry_at_ms") or 0
        if retry_at > now or sent.get(entity_id) == retry_at:
            continue
        key, _ = to_bytes(SyncState.model_validate(value).parked[0])
        control = Control(command="retry", requested_ms=now)
        await topic.send(key=key, value=control.model_dump_json().encode())
        sent[entity_id] = retry_at
        due += 1
    return due
