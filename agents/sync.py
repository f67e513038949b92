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

from cdcsync.agents.apply import Outcome, apply_decision
from cdcsync.agents.decide import decide
from cdcsync.agents.retry import backoff_delay
from cdcsync.errors import MappingError, SchemaError, SinkError, SinkTransientError
from cdcsync.mappers.fieldmap import FieldMap
from cdcsync.schemas.config import Config, EntityConfig
from cdcsync.schemas.envelope import ChangeEvent, Ignored, parse_change, parse_key
from cdcsync.schemas.events import (
    DeadLetter,
    ExternalRef,
    RawRecord,
    SourcePosition,
    SyncResult,
)
from cdcsync.schemas.state import SyncState
from cdcsync.sinks.base import CallCounter, Sink, call_counter
from cdcsync.sinks.registry import build_sink
from cdcsync.streams.tables import bind_event

if TYPE_CHECKING:
    from cdcsync.streams.topics import Topics

__all__ = ["EntitySync", "register_sync_agents"]

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class EntitySync:
    """Everything the agent of one entity needs; one instance per configured entity."""

    entity: str
    config: EntityConfig
    sink_factory: Callable[[], Sink]
    table: Any  # faust Table[str, dict]
    topics: Topics
    max_attempts: int = 3

    def __post_init__(self) -> None:
        self.fieldmap = FieldMap(self.config.mapping)

    @functools.cached_property
    def sink(self) -> Sink:
        """The entity's sink, built on first use so operator commands need no API secrets."""
        return self.sink_factory()

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
                await self._result(
                    parsed.entity_id or "",
                    None,
                    Outcome("skip", parsed.reason, None, None),
                    position,
                    received,
                    None,
                    0,
                    1,
                )
                return
            await self._sync(event, parsed, position, received)
        except SchemaError as exc:
            await self._dead_letter(event, position, entity_id, "schema", exc, 1)
        except MappingError as exc:
            await self._dead_letter(event, position, entity_id, "mapping", exc, 1)
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
            fieldmap=self.fieldmap,
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
                    outcome = await apply_decision(
                        decision, sink=self.sink, natural_key=self.config.natural_key
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
            self._store(
                change.entity_id,
                (state or SyncState()).model_copy(
                    update={
                        "status": "failed",
                        "last_error": str(exc)[:500],
                        "last_partition": position.partition,
                        "last_offset": position.offset,
                        "updated_ms": _now_ms(),
                    }
                ),
            )
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

        new_state = self._next_state(state, decision.payload_hash, outcome, position)
        self._store(change.entity_id, new_state)
        await self._result(
            change.entity_id,
            change,
            outcome,
            position,
            received,
            change.committed_ms,
            counter.calls,
            attempt,
        )

    def _next_state(
        self,
        state: SyncState | None,
        digest: str | None,
        outcome: Outcome,
        position: SourcePosition,
    ) -> SyncState:
        base = state or SyncState()
        update: dict[str, Any] = {
            "last_partition": position.partition,
            "last_offset": position.offset,
            "updated_ms": _now_ms(),
            "last_error": None,
        }
        if outcome.action == "delete":
            update |= {
                "status": "deleted",
                "external_id": None,
                "row_id": None,
                "payload_hash": None,
            }
        elif outcome.action in ("create", "update"):
            update |= {
                "status": "synced",
                "external_id": outcome.external_id,
                "row_id": outcome.record.row_id if outcome.record else None,
                "payload_hash": digest,
            }
        return base.model_copy(update=update)

    def _store(self, entity_id: str, state: SyncState) -> None:
        # Write the value back: Faust only logs assignments to the changelog.
        self.table[entity_id] = state.model_dump(mode="json")

    async def _result(
        self,
        entity_id: str,
        change: ChangeEvent | None,
        outcome: Outcome,
        position: SourcePosition,
        received: int,
        committed_ms: int | None,
        calls: int,
        attempts: int,
    ) -> None:
        completed = _now_ms()
        start = committed_ms if committed_ms is not None else received
        external = None
        if outcome.external_id is not None:
            external = ExternalRef(
                type=self.sink.object_type,
                id=outcome.external_id,
                link=self.sink.link(outcome.external_id),
                row_id=outcome.record.row_id if outcome.record else None,
            )
        result = SyncResult(
            entity=self.entity,
            entity_id=entity_id,
            op=change.op if change else None,
            action=outcome.action,
            reason=outcome.reason,
            source=position,
            external=external,
            api_calls=calls,
            attempts=attempts,
            committed_ms=committed_ms,
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
        key = (entity_id or "").encode() if entity_id else event.key
        await self.topics.dead_letters.send(key=key, value=letter.model_dump_json().encode())


def _agent_for(sync: EntitySync, config: Config) -> Any:
    # concurrency=1 keeps partition order; parallelism comes from process_batch.
    async def agent(stream: faust.StreamT) -> None:
        async for events in stream.take_events(
            config.app.batch_size, within=config.app.batch_within_s
        ):
            await sync.process_batch(events)

    agent.__name__ = agent.__qualname__ = f"sync_{sync.entity}"
    return agent


def register_sync_agents(
    app: faust.App, config: Config, topics: Topics, tables: dict[str, Any]
) -> list[EntitySync]:
    """Declare one sync agent per configured entity."""
    syncs = []
    for entity, cfg in config.entities.items():
        target = cfg.target
        sync = EntitySync(
            entity=entity,
            config=cfg,
            table=tables[entity],
            topics=topics,
            sink_factory=functools.partial(build_sink, target.provider, target.settings),
        )
        syncs.append(sync)

        app.agent(topics.entities[entity], name=f"sync-{entity}", concurrency=1)(
            _agent_for(sync, config)
        )
    return syncs
