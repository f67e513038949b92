"""The sync agent: consume an entity topic, decide, apply, record state, emit one event.

Every record consumed ends as exactly one result or one dead letter; nothing
raised here escapes to Faust (which would ack and skip the record). Records of
one batch are grouped by key: groups run concurrently, the records of one key
strictly in order, so the partition stays the lock for each entity.
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
from cdcsync.agents.decide import decide
from cdcsync.agents.retry import backoff_delay
from cdcsync.errors import (
    ConfigurationError,
    MappingError,
    SchemaError,
    SinkError,
    SinkTransientError,
)
from cdcsync.schemas.config import Config, EntityConfig
from cdcsync.schemas.envelope import ChangeEvent, Ignored, parse_change, parse_key
from cdcsync.schemas.events import (
    ConflictEvent,
    DeadLetter,
    ExternalRef,
    RawRecord,
    SourcePosition,
    SyncResult,
)
from cdcsync.schemas.state import SyncState
from cdcsync.sinks.base import CallCounter, Sink, SourceWriter, call_counter
from cdcsync.streams.tables import bind_event

if TYPE_CHECKING:
    from cdcsync.mappers.base import Mapper
    from cdcsync.streams.topics import Topics

__all__ = ["EntitySync"]

log = logging.getLogger(__name__)

#: Outcomes after which the entity is in sync, and those after which it is gone.
_SYNCED = {"create", "update", "pull", "mark_source"}
_GONE = {"delete", "pull_delete", "mark_target"}


def _now_ms() -> int:
    return int(time.time() * 1000)


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
    max_attempts: int = 3

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

    async def process_batch(self, events: Sequence[EventT]) -> None:
        """Process one ``take_events`` batch: keys concurrently, each key in order."""
        groups: dict[bytes | None, list[EventT]] = {}
        for event in events:
            groups.setdefault(event.key, []).append(event)
        await asyncio.gather(*(self._process_group(g) for g in groups.values()))

    async def _process_group(self, events: list[EventT]) -> None:
        for event in events:
            await self.process(event)

    async def process(self, event: EventT) -> None:
        """Take one record to a result or a dead letter; never raises."""
        received = _now_ms()
        msg = event.message
        position = SourcePosition(topic=msg.topic, partition=msg.partition, offset=msg.offset)
        bind_event(event)
        entity_id: str | None = None
        try:
            # The key first: a dead letter for a bad value still names its entity.
            entity_id = parse_key(event.key, key_field=self.config.key)
            parsed = parse_change(event.key, event.value, key_field=self.config.key)
            if isinstance(parsed, Ignored):
                skip = Outcome("skip", parsed.reason, None)
                await self._result(entity_id, None, skip, position, received, 0, 1)
                return
            await self._sync(event, parsed, position, received)
        except SchemaError as exc:
            await self._dead_letter(event, position, entity_id, "schema", exc, 1)
        except MappingError as exc:
            await self._dead_letter(event, position, entity_id, "mapping", exc, 1)
        except ConfigurationError as exc:
            await self._dead_letter(event, position, entity_id, "configuration", exc, 1)
        except Exception as exc:  # the worker must keep going whatever happens
            log.exception(
                "%s %s: unexpected error at %s[%d]@%d",
                self.entity,
                entity_id,
                msg.topic,
                msg.partition,
                msg.offset,
            )
            await self._dead_letter(event, position, entity_id, "internal", exc, 1)

    async def _sync(
        self, event: EventT, change: ChangeEvent, position: SourcePosition, received: int
    ) -> None:
        raw_state = self.table.get(change.entity_id)
        state = SyncState.model_validate(raw_state) if raw_state else None
        decision = decide(
            change,
            state,
            config=self.config,
            mapper=self.mapper,
            partition=position.partition,
            offset=position.offset,
        )
        counter = CallCounter()
        token = call_counter.set(counter)
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    outcome = await self.applier.apply(
                        decision, entity_id=change.entity_id, source_row=change.after
                    )
                    break
                except SinkTransientError as exc:
                    if attempt >= self.max_attempts:
                        raise
                    delay = backoff_delay(attempt, retry_after=exc.retry_after)
                    log.warning(
                        "%s %s: transient failure (%s); retry %d/%d in %.2fs",
                        self.entity,
                        change.entity_id,
                        exc,
                        attempt + 1,
                        self.max_attempts,
                        delay,
                    )
                    await asyncio.sleep(delay)
        except SinkError as exc:
            failed = (state or SyncState()).model_copy(
                update={
                    "status": "failed",
                    "last_error": str(exc)[:500],
                    "last_partition": position.partition,
                    "last_offset": position.offset,
                    "updated_ms": _now_ms(),
                }
            )
            self._store(change.entity_id, failed)
            await self._write_status(change.entity_id, failed, attempt)
            reason = "sink_transient" if isinstance(exc, SinkTransientError) else "sink_permanent"
            await self._dead_letter(
                event,
                position,
                change.entity_id,
                reason,
                exc,
                attempt,
                details={"api_calls": counter.calls},
            )
            return
        finally:
            call_counter.reset(token)

        new_state = self._next_state(state, outcome, position)
        self._store(change.entity_id, new_state)
        self._link(event, change.entity_id, state, new_state)
        if outcome.action != "skip":
            await self._write_status(change.entity_id, new_state, attempt)
        if outcome.action == "park":
            await self._conflict(change.entity_id, outcome, position)
        await self._result(
            change.entity_id, change, outcome, position, received, counter.calls, attempt
        )

    def _next_state(
        self, state: SyncState | None, outcome: Outcome, position: SourcePosition
    ) -> SyncState:
        base = state or SyncState()
        update: dict[str, Any] = {
            "last_partition": position.partition,
            "last_offset": position.offset,
            "updated_ms": _now_ms(),
        }
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
            if outcome.superseded is not None:
                update["superseded"] = [*base.superseded, outcome.superseded][-8:]
        elif outcome.action == "park":
            update |= {"status": "conflict", "external_id": outcome.external_id}
        return base.model_copy(update=update)

    def _store(self, entity_id: str, state: SyncState) -> None:
        # Write the value back: Faust only logs assignments to the changelog.
        self.table[entity_id] = state.model_dump(mode="json")

    def _link(self, event: EventT, entity_id: str, old: SyncState | None, new: SyncState) -> None:
        """Keep the external id -> entity key reference (``make_ref``) the poller needs."""
        old_id = old.external_id if old else None
        if old_id and old_id != new.external_id and old_id in self.refs:
            del self.refs[old_id]
        if new.external_id and new.external_id != old_id and event.key is not None:
            self.refs[new.external_id] = event.key.decode()

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

    def _external_ref(self, outcome: Outcome) -> ExternalRef | None:
        if outcome.external_id is None:
            return None
        return ExternalRef(
            type=self.sink.object_type,
            id=outcome.external_id,
            link=self.sink.link(outcome.external_id),
            row_id=outcome.record.row_id if outcome.record else None,
        )

    async def _result(
        self,
        entity_id: str,
        change: ChangeEvent | None,
        outcome: Outcome,
        position: SourcePosition,
        received: int,
        calls: int,
        attempts: int,
    ) -> None:
        completed = _now_ms()
        committed = change.committed_ms if change else None
        start = committed if committed is not None else received
        result = SyncResult(
            entity=self.entity,
            entity_id=entity_id,
            op=change.op if change else None,
            origin=change.origin if change else "source",
            action=outcome.action,
            reason=outcome.reason,
            source=position,
            external=self._external_ref(outcome),
            api_calls=calls,
            attempts=attempts,
            committed_ms=committed,
            received_ms=received,
            completed_ms=completed,
            latency_ms=float(max(completed - start, 0)),
        )
        log.info(
            "%s %s: %s (%s) %s[%d]@%d",
            self.entity,
            entity_id,
            outcome.action,
            outcome.reason,
            position.topic,
            position.partition,
            position.offset,
        )
        await self.topics.results.send(
            key=entity_id.encode(), value=result.model_dump_json().encode()
        )

    async def _conflict(self, entity_id: str, outcome: Outcome, position: SourcePosition) -> None:
        event = ConflictEvent(
            entity=self.entity,
            entity_id=entity_id,
            external=self._external_ref(outcome),
            source_version=outcome.conflict.get("source"),
            target_version=outcome.conflict.get("target"),
            source=position,
            detected_ms=_now_ms(),
        )
        await self.topics.conflicts.send(
            key=entity_id.encode(), value=event.model_dump_json().encode()
        )

    async def _dead_letter(
        self,
        event: EventT,
        position: SourcePosition,
        entity_id: str | None,
        reason: str,
        exc: Exception,
        attempts: int,
        details: dict[str, Any] | None = None,
    ) -> None:
        letter = DeadLetter(
            entity=self.entity,
            entity_id=entity_id,
            reason=reason,
            error_type=type(exc).__name__,
            error=str(exc)[:2000],
            attempts=attempts,
            source=position,
            original=RawRecord.from_bytes(event.key, event.value),
            failed_ms=_now_ms(),
            details=details or {},
        )
        log.warning(
            "%s %s: dead letter (%s: %s) %s[%d]@%d",
            self.entity,
            entity_id,
            reason,
            exc,
            position.topic,
            position.partition,
            position.offset,
        )
        key = entity_id.encode() if entity_id else event.key
        await self.topics.dead_letters.send(key=key, value=letter.model_dump_json().encode())


def agent_for(sync: EntitySync, config: Config) -> Callable[[faust.StreamT], Any]:
    """The Faust agent function of one entity."""

    # concurrency=1 keeps partition order; parallelism comes from process_batch.
    async def agent(stream: faust.StreamT) -> None:
        async for events in stream.take_events(
            config.app.batch_size, within=config.app.batch_within_s
        ):
            await sync.process_batch(events)

    agent.__name__ = agent.__qualname__ = f"sync_{sync.entity}"
    return agent
