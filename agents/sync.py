"""The sync agent: consume an entity topic, decide, apply, record state, emit one event.

Read top to bottom, this module is the path of one record: the pipeline
(``agents.pipeline``) hands the records of one key to
:meth:`EntitySync.process_key`, each record is parsed and checked
against the state (:meth:`~EntitySync.handle`), decided (``agents.decide``),
applied (``agents.apply``), and ends as one result or dead letter
(``agents.emit``). Nothing raised here escapes to Faust, which would ack and
skip the record.

Records of one key run strictly in order and different keys concurrently, so
the partition stays the lock for each entity. Consecutive source updates of one
entity queued together coalesce: each but the last ends as a ``skip`` result, and
one write carries them. A transient failure parks the entity
(``agents.parking``): its later records queue behind the failed one in its
state, the other entities keep flowing, and a retry record sent through the
same topic redrives them when due (``agents.controls``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import EventT

from cdcsync import metrics
from cdcsync.agents import deliveries
from cdcsync.agents.apply import Applier
from cdcsync.agents.associations import ChildKeys, ParentLink, publish_links, with_parent
from cdcsync.agents.change import Outcome, RawEvent, now_ms
from cdcsync.agents.controls import Controls
from cdcsync.agents.decide import coalescible_update, decide
from cdcsync.agents.deliveries import Deliveries
from cdcsync.agents.emit import Emitter, Topics
from cdcsync.agents.parking import overflow, park_behind, park_carried, parked_event
from cdcsync.agents.setbacks import Setbacks
from cdcsync.agents.state import StateStore, bind_event, next_state
from cdcsync.agents.status_columns import write_status
from cdcsync.errors import (
    ConfigurationError,
    MappingError,
    SchemaError,
    SinkError,
)
from cdcsync.mappers.base import Mapper
from cdcsync.schemas.config import EntityConfig
from cdcsync.schemas.envelope import (
    REPLAY_HEADER,
    ChangeEvent,
    Control,
    Ignored,
    parse_change,
    parse_key,
)
from cdcsync.schemas.events import SourcePosition
from cdcsync.schemas.state import SyncState
from cdcsync.sinks.base import Sink, SourceWriter, counting

__all__ = ["EntitySync"]

log = logging.getLogger(__name__)


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
    #: faust GlobalTable[str, str | None]: external id -> version the poller last published.
    polled: Any = None

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

    @functools.cached_property
    def state(self) -> StateStore:
        return StateStore(self.table, self.refs)

    @functools.cached_property
    def controls(self) -> Controls:
        return Controls(
            entity=self.entity,
            config=self.config,
            state=self.state,
            emit=self.emit,
            applier=self.applier,
            run=self.run,
            child_keys=self.child_keys,
        )

    @functools.cached_property
    def setbacks(self) -> Setbacks:
        return Setbacks(self.entity, self.config, self.state, self.emit, self._write_status)

    async def aclose(self) -> None:
        """Close the sink's connections, if it was built; never raises (the worker stops)."""
        if "sink" in self.__dict__:  # built on first use (functools.cached_property)
            try:
                await self.sink.aclose()
            except Exception as exc:
                log.warning("%s: closing the sink failed: %r", self.entity, exc)

    # -- consuming ---------------------------------------------------------------------

    async def process_batch(self, events: Sequence[EventT]) -> None:
        """Process records of several keys: keys concurrently, each key in order (what the
        pipeline's lanes do, in one call; tests and tools)."""
        groups: dict[bytes | None, list[EventT]] = {}
        for event in events:
            groups.setdefault(event.key, []).append(event)
        await asyncio.gather(*(self.process_key(g) for g in groups.values()))

    async def process_key(self, events: list[EventT]) -> None:
        """The records of one key, in order, each ended; return once what they produced
        is delivered (``DeliveryError`` if it was not: they must not be acked)."""
        batch = Deliveries()
        token = deliveries.current.set(batch)
        try:
            await self._process_group(events)
        finally:
            deliveries.current.reset(token)
        await batch.confirm()

    async def _process_group(self, events: list[EventT]) -> None:
        """The records of one key, in order; consecutive plain source updates coalesce."""
        if len(events) == 1:
            await self.process(events[0])
            return
        raws = [_raw(event) for event in events]
        updates = [
            None if _replayed(e) else coalescible_update(r, self.config)
            for e, r in zip(events, raws, strict=True)
        ]
        carried: list[tuple[RawEvent, ChangeEvent]] = []
        for i, (event, raw) in enumerate(zip(events, raws, strict=True)):
            change = updates[i]
            later = updates[i + 1] if i + 1 < len(events) else None
            bind_event(event)
            if change is not None and later is not None and self._coalescible(raw, change):
                carried.append((raw, change))  # the next record's write carries it
                continue
            if carried:
                self.emit.watch(raw.position)
            await self.handle(raw, recheck=_replayed(event), parsed=change)
            if carried:
                await self._end_carried(carried, raw)
                carried = []

    def _coalescible(self, raw: RawEvent, change: ChangeEvent) -> bool:
        """Whether the next update of the entity may carry this one: in sync (or new), and
        not a redelivery (handle() reports that as already applied). A parked entity queues
        every record instead."""
        state = self.state.load(change.entity_id)
        if state is not None and (state.status not in ("synced", "deleted") or state.parked):
            return False
        return state is None or not state.seen(raw.position.partition, raw.position.offset)

    async def _end_carried(self, carried: list[tuple[RawEvent, ChangeEvent]], by: RawEvent) -> None:
        """End the changes ``by`` carried as it ended: skipped after its result, dead-lettered
        with its dead letter, or queued in front of it when it was parked."""
        ending, offset = self.emit.ending(by.position), by.position.offset
        entity_id = carried[0][1].entity_id
        try:
            if ending is None:
                self.state.store(entity_id, park_carried(self.state.load(entity_id), carried, by))
                return
            for raw, change in carried:
                if ending == "result":
                    why = f"coalesced: superseded by offset {offset}, queued with it, which "
                    state = self.state.load(entity_id)
                    external_id = state.external_id if state is not None else None
                    skip = Outcome("skip", why + "synced the newer row", external_id)
                    await self.emit.result(entity_id, change, skip, raw, calls=0, attempts=1)
                else:
                    reason, error = ending
                    why = f"superseded by offset {offset}, which ended as a dead letter: {error}"
                    details = {"carried_by_offset": offset}
                    await self.emit.dead_letter(raw, entity_id, reason, why, 1, details=details)
        except Exception as exc:
            await self._unexpected(by, entity_id, exc)

    async def process(self, event: EventT) -> None:
        """Take one record to a result, a dead letter or the entity's parked queue."""
        bind_event(event)  # table writes go to this record's changelog partition
        await self.handle(_raw(event), recheck=_replayed(event))

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
            record = parsed or parse_change(raw.key, raw.value, key_field=self.config.key)
            assert entity_id is not None  # parse_change refuses a record without a key
            if isinstance(record, Ignored):
                skip = Outcome("skip", record.reason, None)
                await self.emit.result(entity_id, None, skip, raw, calls=0, attempts=1)
                return
            if isinstance(record, Control):
                await self.controls.apply(entity_id, record, raw)
                return
            if recheck and record.origin == "source":
                record = record.model_copy(update={"recheck": True})
            state = self.state.load(entity_id)
            if state is not None and (state.status == "retrying" or state.parked_for_retry):
                await self._queue_behind(raw, record, state)
                return
            await self.run(raw, record, state, attempt=1, errors=[])
        except SchemaError as exc:
            await self.emit.dead_letter(raw, entity_id, "schema", exc, 1)
        except Exception as exc:  # the worker must keep going whatever happens
            await self._unexpected(raw, entity_id, exc)

    async def _queue_behind(self, raw: RawEvent, change: ChangeEvent, state: SyncState) -> None:
        """The entity is parked: queue the record behind the failed one (once)."""
        pos = raw.position
        if state.seen(pos.partition, pos.offset):
            why = f"already applied (redelivered offset {pos.offset})"
            skip = Outcome("skip", why, state.external_id)
            await self.emit.result(change.entity_id, change, skip, raw, calls=0, attempts=1)
            return
        event = parked_event(raw)
        if (full := overflow(state, event, self.config.retry)) is not None:
            full = f"parked queue full: {full}; the record was not queued"
            await self.emit.dead_letter(raw, change.entity_id, "parked_overflow", full, 1)
            return
        self.state.store(change.entity_id, park_behind(state, event))
        metrics.observe_parked(self.entity)
        log.info(
            "%s %s: queued behind a parked event %s[%d]@%d",
            self.entity,
            change.entity_id,
            pos.topic,
            pos.partition,
            pos.offset,
        )

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
        """Decide, apply, store the new state, emit the result (or park or give up)."""
        pos, entity_id, now = raw.position, change.entity_id, now_ms()
        decision = decide(change, state, config=self.config, mapper=self.mapper,
                          partition=pos.partition, offset=pos.offset, now_ms=now)  # fmt: skip
        if decision.action == "hold":
            return await self.setbacks.loop(
                raw, entity_id, state or SyncState(), origin=change.origin, now=now
            )
        change_at = f"{pos.topic}/{pos.partition}/{pos.offset}"  # the same on every retry
        with counting(self.entity, entity_id, change=change_at) as counter:
            try:
                if self.parent is not None:
                    decision = with_parent(decision, change, self.parent)
                outcome = await self.applier.apply(
                    decision, entity_id=entity_id, source_row=change.after
                )
            except SinkError as exc:
                return await self.setbacks.sink_error(
                    raw, entity_id, state, exc, origin=change.origin, attempt=attempt,
                    errors=errors, calls=counter.calls,
                )  # fmt: skip

        new_state = next_state(state, outcome, pos, now_ms=now, origin=change.origin)
        self.state.store(entity_id, new_state)
        self.state.link(raw, state, new_state)
        if self.links is not None or self.parent is not None:
            await publish_links(change, outcome, new_state, entity=self.entity, links=self.links,
                                parent=self.parent)  # fmt: skip
        if outcome.action != "skip" and self.config.status_columns is not None:
            await self._write_status(entity_id, new_state, attempt)
        if outcome.action == "park":
            await self.emit.conflict(entity_id, outcome, raw)
        await self.emit.result(
            entity_id, change, outcome, raw, calls=counter.calls, attempts=attempt
        )
        return True

    async def _write_status(self, entity_id: str, state: SyncState, attempts: int) -> None:
        await write_status(
            self.writer,
            self.config.status_columns,
            self.sink,
            entity=self.entity,
            entity_id=entity_id,
            state=state,
            attempts=attempts,
        )


def _raw(event: EventT) -> RawEvent:
    msg = event.message
    position = SourcePosition(topic=msg.topic, partition=msg.partition, offset=msg.offset)
    return RawEvent(event.key, event.value, position, now_ms())


def _replayed(event: EventT) -> bool:
    headers = event.headers or {}
    return REPLAY_HEADER in headers or REPLAY_HEADER.encode() in headers
