"""The sync agent: consume an entity topic, decide, apply, record state, emit one event.

Every change consumed ends as exactly one result or one dead letter; nothing
raised here escapes to Faust (which would ack and skip the record). Records of
one batch are grouped by key: groups run concurrently, the records of one key
strictly in order, so the partition stays the lock for each entity. Consecutive
source updates of one entity in a batch coalesce: each but the last ends as a
``skip`` result ("coalesced: superseded by offset N"), and one write carries them.

A transient failure parks the entity (``agents.parking``): its later records
queue behind the failed one in its state, the other entities keep flowing, and
a retry record sent through the same topic redrives them when due.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faust
from faust.types import EventT

from cdcsync.agents.apply import Applier, Outcome
from cdcsync.agents.associations import ChildKeys, ParentLink, notify_parent, with_parent
from cdcsync.agents.controls import apply_control, parked_event, send_due_retries
from cdcsync.agents.decide import decide
from cdcsync.agents.emit import Emitter, RawEvent, now_ms
from cdcsync.agents.parking import park_behind, park_failed
from cdcsync.errors import (
    ConfigurationError,
    MappingError,
    SchemaError,
    SinkError,
    SinkTransientError,
)
from cdcsync.schemas.config import Config, EntityConfig
from cdcsync.schemas.envelope import ChangeEvent, Control, Ignored, parse_change, parse_key
from cdcsync.schemas.events import SourcePosition
from cdcsync.schemas.state import ParkedEvent, SyncState
from cdcsync.sinks.base import CallCounter, Sink, SourceWriter, call_counter
from cdcsync import metrics
from cdcsync.streams.tables import bind_event

if TYPE_CHECKING:
    from cdcsync.mappers.base import Mapper
    from cdcsync.streams.topics import Topics

__all__ = ["EntitySync", "agent_for"]

log = logging.getLogger(__name__)

#: Outcomes after which the entity is in sync, and those after which it is gone.
_SYNCED = {"create", "update", "pull", "mark_source"}
_GONE = {"delete", "pull_delete", "mark_target"}
#: Header of records re-published by `cdcsync replay`.
REPLAY_HEADER = "cdcsync-replay"


@dataclass
class EntitySync:
    """Everything the agent of one entity needs; one instance per configured entity."""

    entity: str
    config: EntityConfig
    mapper: Mapper
    sink_factory: Callable[[], Sink]
    table: Any  # faust Table[str, dict]: entity id -> SyncState
    refs: Any  # faust GlobalTable[str, str]: external id -> entity key (JSON text)
    topics: Topics
    writer_factory: Callable[[], SourceWriter | None] = lambda: None
    #: Associations: this entity's parent, if it is a child; its own links table and the
    #: reader of its child rows, if it is a parent (see agents.associations).
    parent: ParentLink | None = None
    links: Any = None
    child_keys: ChildKeys | None = None

    @functools.cached_property
    def sink(self) -> Sink:
        """The entity's sink, built on first use so operator commands need no API secrets."""
        return self.sink_factory()

    @functools.cached_property
    def writer(self) -> SourceWriter | None:
        """The source-table writer of the pull direction, if the entity has a source table."""
        return self.writer_factory()

    @functools.cached_property
    def applier(self) -> Applier:
        return Applier(config=self.config, mapper=self.mapper, sink=self.sink, writer=self.writer)

    @functools.cached_property
    def emit(self) -> Emitter:
        return Emitter(self.entity, self.topics, self.sink)

    # -- consuming ---------------------------------------------------------------------

    async def process_batch(self, events: Sequence[EventT]) -> None:
        """Process one ``take_events`` batch: keys concurrently, each key in order."""
        groups: dict[bytes | None, list[EventT]] = {}
        for event in events:
            groups.setdefault(event.key, []).append(event)
        await asyncio.gather(*(self._process_group(g) for g in groups.values()))

    async def _process_group(self, events: list[EventT]) -> None:
        """The records of one key, in order; consecutive plain source updates coalesce."""
        if len(events) == 1:
            await self.process(events[0])
            return
        raws = [self._raw(event) for event in events]
        updates = [self._plain_update(event, raw) for event, raw in zip(events, raws, strict=True)]
        for i, (event, raw) in enumerate(zip(events, raws, strict=True)):
            change = updates[i]
            later = updates[i + 1] if i + 1 < len(events) else None
            bind_event(event)
            if (
                change is not None
                and later is not None
                and await self._coalesce(raw, change, raws[i + 1])
            ):
                continue
            await self.handle(raw, recheck=self._replayed(event), parsed=change)

    def _raw(self, event: EventT) -> RawEvent:
        msg = event.message
        position = SourcePosition(topic=msg.topic, partition=msg.partition, offset=msg.offset)
        return RawEvent(event.key, event.value, position, now_ms())

    @staticmethod
    def _replayed(event: EventT) -> bool:
        headers = event.headers or {}
        return REPLAY_HEADER in headers or REPLAY_HEADER.encode() in headers

    def _plain_update(self, event: EventT, raw: RawEvent) -> ChangeEvent | None:
        """The change if the record is a source update that a later update of the same
        entity may carry (no replay, no re-check, no ``watch``); else None."""
        if raw.value is None or raw.key is None or self.config.watch or self._replayed(event):
            return None
        try:
            parsed = parse_change(raw.key, raw.value, key_field=self.config.key)
        except Exception:  # handle() parses again and dead-letters it
            return None
        if not isinstance(parsed, ChangeEvent) or parsed.origin != "source" or parsed.recheck:
            return None
        return parsed if parsed.op == "update" else None

    async def _coalesce(self, raw: RawEvent, change: ChangeEvent, later: RawEvent) -> bool:
        """Skip a change whose entity is updated again by the next record of the batch:
        that record's write carries this change too (its payload is the newer row).

        Only for an entity in sync (or new): a parked one queues every record instead.
        """
        try:
            state = self.load(change.entity_id)
            if state is not None and state.status not in ("synced", "deleted"):
                return False
            if state is not None and state.seen(raw.position.partition, raw.position.offset):
                return False  # a redelivery: handle() reports it as already applied
            outcome = Outcome(
                "skip",
                f"coalesced: superseded by offset {later.position.offset} of the same batch, "
                "which syncs the newer row",
                state.external_id if state is not None and state.status == "synced" else None,
            )
            await self.emit.result(change.entity_id, change, outcome, raw, calls=0, attempts=1)
        except Exception as exc:
            await self._unexpected(raw, change.entity_id, exc)
        return True

    async def process(self, event: EventT) -> None:
        """Take one record to a result, a dead letter or the entity's parked queue."""
        bind_event(event)  # table writes go to this record's changelog partition
        await self.handle(self._raw(event), recheck=self._replayed(event))

    async def handle(
        self, raw: RawEvent, *, recheck: bool = False, parsed: ChangeEvent | None = None
    ) -> None:
        """Handle one record; never raises. ``recheck``: verify the external copy.

        ``parsed``: the record already parsed by the caller (a plain source change).
        """
        entity_id: str | None = None
        try:
            # The key first: a dead letter for a bad value still names its entity.
            if raw.key is not None:
                entity_id = parse_key(raw.key, key_field=self.config.key)
            if parsed is None:
                parsed = parse_change(raw.key, raw.value, key_field=self.config.key)
            assert entity_id is not None  # parse_change refuses a record without a key
            if isinstance(parsed, Ignored):
                await self.emit.result(
                    entity_id, None, Outcome("skip", parsed.reason, None), raw, calls=0, attempts=1
                )
                return
            if isinstance(parsed, Control):
                await self._control(entity_id, parsed, raw)
                return
            if recheck and parsed.origin == "source":
                parsed = parsed.model_copy(update={"recheck": True})
            state = self.load(entity_id)
            pos = raw.position
            if state is not None and state.status == "retrying":
                if state.seen(pos.partition, pos.offset):
                    skip = Outcome(
                        "skip",
                        f"already applied (redelivered offset {pos.offset})",
                        state.external_id,
                    )
                    await self.emit.result(entity_id, parsed, skip, raw, calls=0, attempts=1)
                    return
                self.store(entity_id, park_behind(state, self._parked(raw)))
                metrics.observe_parked(self.entity)
                log.info(
                    "%s %s: queued behind a parked event %s[%d]@%d",
                    self.entity,
                    entity_id,
                    pos.topic,
                    pos.partition,
                    pos.offset,
                )
                return
            await self.run(raw, parsed, state, attempt=1, errors=[])
        except SchemaError as exc:
            await self.emit.dead_letter(raw, entity_id, "schema", exc, 1)
        except Exception as exc:  # the worker must keep going whatever happens
            await self._unexpected(raw, entity_id, exc)

    async def _unexpected(self, raw: RawEvent, entity_id: str | None, exc: Exception) -> None:
        pos = raw.position
        log.exception(
            "%s %s: unexpected error at %s[%d]@%d",
            self.entity,
            entity_id,
            pos.topic,
            pos.partition,
            pos.offset,
        )
        await self.emit.dead_letter(raw, entity_id, "internal", exc, 1)

    # -- one attempt -------------------------------------------------------------------

    async def run(
        self,
        raw: RawEvent,
        change: ChangeEvent,
        state: SyncState | None,
        *,
        attempt: int,
        errors: list[str],
    ) -> bool:
        """Try one change; True when it ended (result or dead letter), False when parked."""
        try:
            return await self._attempt(raw, change, state, attempt=attempt, errors=errors)
        except MappingError as exc:
            await self.emit.dead_letter(raw, change.entity_id, "mapping", exc, attempt)
        except ConfigurationError as exc:
            await self.emit.dead_letter(raw, change.entity_id, "configuration", exc, attempt)
        except Exception as exc:
            await self._unexpected(raw, change.entity_id, exc)
        return True

    async def _attempt(
        self,
        raw: RawEvent,
        change: ChangeEvent,
        state: SyncState | None,
        *,
        attempt: int,
        errors: list[str],
    ) -> bool:
        pos = raw.position
        decision = decide(
            change,
            state,
            config=self.config,
            mapper=self.mapper,
            partition=pos.partition,
            offset=pos.offset,
        )
        counter = CallCounter(entity=self.entity, entity_id=change.entity_id)
        token = call_counter.set(counter)
        try:
            if self.parent is not None:
                decision = with_parent(decision, change, self.parent)
            outcome = await self.applier.apply(
                decision, entity_id=change.entity_id, source_row=change.after
            )
        except SinkError as exc:
            transient = isinstance(exc, SinkTransientError)
            if transient and attempt < self.config.retry.max_attempts:
                metrics.observe_retry(self.entity)
                metrics.observe_parked(self.entity)
                parked = park_failed(
                    state or SyncState(),
                    self._parked(raw),
                    error=str(exc)[:500],
                    attempts=attempt,
                    errors=errors,
                    now_ms=now_ms(),
                    retry=self.config.retry,
                    retry_after=exc.retry_after,
                )
                self.store(change.entity_id, parked)
                await self._write_status(change.entity_id, parked, attempt)
                log.warning(
                    "%s %s: transient failure, attempt %d/%d (%s); parked until %s",
                    self.entity,
                    change.entity_id,
                    attempt,
                    self.config.retry.max_attempts,
                    exc,
                    time.strftime("%H:%M:%S", time.localtime(parked.retry_at_ms / 1000)),
                )
                return False
            await self._give_up(
                raw,
                change,
                state,
                exc,
                attempt,
                [*errors, str(exc)[:500]],
                counter.calls,
                transient=transient,
            )
            return True
        finally:
            call_counter.reset(token)

        new_state = self.next_state(state, outcome, pos)
        self.store(change.entity_id, new_state)
        self._link(raw, change.entity_id, state, new_state)
        await self._associate(change, outcome, new_state)
        if outcome.action != "skip":
            await self._write_status(change.entity_id, new_state, attempt)
        if outcome.action == "park":
            await self.emit.conflict(change.entity_id, outcome, raw)
        await self.emit.result(
            change.entity_id, change, outcome, raw, calls=counter.calls, attempts=attempt
        )
        return True

    async def _give_up(
        self,
        raw: RawEvent,
        change: ChangeEvent,
        state: SyncState | None,
        exc: SinkError,
        attempts: int,
        errors: list[str],
        calls: int,
        *,
        transient: bool,
    ) -> None:
        pos = raw.position
        failed = (state or SyncState()).model_copy(
            update={
                "status": "permanently_failed",
                "last_error": str(exc)[:500],
                "last_partition": pos.partition,
                "last_offset": pos.offset,
                "attempts": 0,
                "errors": [],
                "retry_at_ms": None,
                "updated_ms": now_ms(),
            }
        )
        self.store(change.entity_id, failed)
        await self._write_status(change.entity_id, failed, attempts)
        reason = "sink_transient" if transient else "sink_permanent"
        await self.emit.dead_letter(
            raw,
            change.entity_id,
            reason,
            exc,
            attempts,
            details={"api_calls": calls, "errors": errors},
        )
        if transient:
            await self.emit.notify(
                change.entity_id,
                "error",
                f"gave up after {attempts} attempts: {str(exc)[:300]}",
                raw,
            )

    async def _associate(self, change: ChangeEvent, outcome: Outcome, state: SyncState) -> None:
        """Publish a parent's external id for its children; tell a child's parent about it."""
        if outcome.action == "skip":
            return
        synced = outcome.action in _SYNCED and state.external_id is not None
        if self.links is not None:
            if synced:
                self.links[change.entity_id] = state.external_id
            elif outcome.action in _GONE:
                self.links.pop(change.entity_id, None)
        if self.parent is not None and (synced or outcome.action in _GONE):
            external_id = state.external_id if synced else None
            await notify_parent(self.parent, change, self.entity, external_id)

    # -- parked entities and operator controls: see agents/controls.py ------------------

    def _parked(self, raw: RawEvent) -> ParkedEvent:
        return parked_event(raw)

    async def _control(self, entity_id: str, control: Control, raw: RawEvent) -> None:
        await apply_control(self, entity_id, control, raw)

    async def send_due_retries(self, topic: faust.TopicT, sent: dict[str, int]) -> int:
        """Send a retry record for each local parked entity whose retry is due."""
        return await send_due_retries(self, topic, sent)

    # -- state -------------------------------------------------------------------------

    def load(self, entity_id: str) -> SyncState | None:
        """The entity's sync state from the table, or ``None`` if it was never seen."""
        raw_state = self.table.get(entity_id)
        return SyncState.model_validate(raw_state) if raw_state else None

    def next_state(
        self, state: SyncState | None, outcome: Outcome, position: SourcePosition
    ) -> SyncState:
        """The state after ``outcome``; the position never moves back."""
        base = state or SyncState()
        update: dict[str, Any] = {
            "updated_ms": now_ms(),
            "attempts": 0,
            "errors": [],
            "retry_at_ms": None,
        }
        if not base.seen(position.partition, position.offset):
            # Never move the position back: a redelivered record must not make the
            # records after it look unapplied.
            update |= {"last_partition": position.partition, "last_offset": position.offset}
        if outcome.action in _GONE:
            update |= {
                "status": "deleted",
                "external_id": None,
                "row_id": None,
                "payload_hash": None,
                "last_error": None,
            }
        elif outcome.action in _SYNCED:
            update |= {"status": "synced", "external_id": outcome.external_id, "last_error": None}
            if outcome.version is not None or outcome.action != "mark_source":
                update["row_id"] = outcome.version
            if outcome.payload_hash is not None:
                update["payload_hash"] = outcome.payload_hash
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
        elif base.status == "retrying":
            update["status"] = "synced"  # a skip ends the retry too
        return base.model_copy(update=update)

    def store(self, entity_id: str, state: SyncState) -> None:
        """Write the state back to the table (and so to its changelog)."""
        # Write the value back: Faust only logs assignments to the changelog.
        self.table[entity_id] = state.model_dump(mode="json")

    def _link(self, raw: RawEvent, entity_id: str, old: SyncState | None, new: SyncState) -> None:
        """Keep the external id -> entity key reference (``make_ref``) the poller needs."""
        old_id = old.external_id if old else None
        if old_id and old_id != new.external_id and old_id in self.refs:
            del self.refs[old_id]
        if new.external_id and new.external_id != old_id and raw.key is not None:
            self.refs[new.external_id] = raw.key.decode()

    async def _write_status(self, entity_id: str, state: SyncState, attempts: int) -> None:
        cols = self.config.status_columns
        if cols is None or self.writer is None or state.status == "deleted":
            return
        values: dict[str, Any] = {}
        if cols.external_id:
            values[cols.external_id] = state.external_id
        if cols.link:
            values[cols.link] = self.sink.link(state.external_id) if state.external_id else None
        if cols.status:
            values[cols.status] = state.status
        if cols.synced_at and state.status == "synced":
            values[cols.synced_at] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if cols.error:
            values[cols.error] = state.last_error
        if cols.attempts:
            values[cols.attempts] = attempts
        try:
            await self.writer.write_status(entity_id, values)
        except Exception as exc:  # status is informative; never fail the sync for it
            log.warning(
                "%s %s: could not write sync-status columns: %s", self.entity, entity_id, exc
            )


def agent_for(sync: EntitySync, config: Config) -> Callable[[faust.StreamT], Any]:
    """The Faust agent function of one entity."""

    # concurrency=1 keeps partition order; parallelism comes from process_batch.
    async def agent(stream: faust.StreamT) -> None:
        # take_events is on faust's Stream but missing from its StreamT protocol.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            config.app.batch_size, within=config.app.batch_within_s
        ):
            await sync.process_batch(events)

    agent.__name__ = agent.__qualname__ = f"sync_{sync.entity}"
    return agent
