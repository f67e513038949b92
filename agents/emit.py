"""The events an agent emits: results, dead letters, conflicts, notifications."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Literal

import faust

from cdcsync import metrics
from cdcsync.agents import deliveries
from cdcsync.agents.change import Outcome, RawEvent, now_ms
from cdcsync.schemas.envelope import ChangeEvent
from cdcsync.schemas.events import (
    ConflictEvent,
    DeadLetter,
    ExternalRef,
    Notification,
    RawRecord,
    SourcePosition,
    SyncResult,
)
from cdcsync.sinks.base import Sink

__all__ = ["MAX_ORIGINAL_BYTES", "Emitter", "Ending", "Topics"]

#: Dead letters carry at most this much of the original value (the producer's limit is 1 MB).
MAX_ORIGINAL_BYTES = 256 * 1024

log = logging.getLogger(__name__)

#: How a watched record ended: "result", a dead letter's (reason, error), or None (not yet).
Ending = Literal["result"] | tuple[str, str] | None


@dataclass(frozen=True)
class Topics:
    """Faust handles of every topic an agent reads or writes, by role (``streams.topics``)."""

    entities: dict[str, faust.TopicT]
    results: faust.TopicT
    dead_letters: faust.TopicT
    conflicts: faust.TopicT
    notifications: faust.TopicT
    audit: faust.TopicT


class Emitter:
    """Sends one entity's events; the link and type of external objects come from its sink."""

    def __init__(self, entity: str, topics: Topics, sink: Sink) -> None:
        self.entity = entity
        self.topics = topics
        self.sink = sink
        #: Records whose ending a caller waits for (a coalesced update's carrier): position ->
        #: None until it ends, then "result" or the dead letter's (reason, error).
        self._watched: dict[SourcePosition, Ending] = {}

    def watch(self, position: SourcePosition) -> None:
        """Remember how the record at ``position`` ends (see :meth:`ending`)."""
        self._watched[position] = None

    def ending(self, position: SourcePosition) -> Ending:
        """How a watched record ended: "result", a dead letter's (reason, error), or None."""
        return self._watched.pop(position, None)

    def external_ref(self, outcome: Outcome) -> ExternalRef | None:
        if outcome.external_id is None:
            return None
        return ExternalRef(
            type=self.sink.object_type,
            id=outcome.external_id,
            link=self.sink.link(outcome.external_id),
            row_id=outcome.record.row_id if outcome.record else None,
        )

    async def result(
        self,
        entity_id: str,
        change: ChangeEvent | None,
        outcome: Outcome,
        raw: RawEvent,
        *,
        calls: int,
        attempts: int,
    ) -> None:
        completed = now_ms()
        committed = change.committed_ms if change else None
        start = committed if committed is not None else raw.received_ms
        result = SyncResult(
            entity=self.entity,
            entity_id=entity_id,
            op=change.op if change else None,
            origin=change.origin if change else "source",
            action=outcome.action,
            reason=outcome.reason,
            source=raw.position,
            external=self.external_ref(outcome),
            api_calls=calls,
            attempts=attempts,
            committed_ms=committed,
            received_ms=raw.received_ms,
            completed_ms=completed,
            latency_ms=float(max(completed - start, 0)),
        )
        pos = raw.position
        # DEBUG: one line per change costs ~5% of a busy worker's CPU (bench/), and the
        # results topic (`cdcsync log`) already says it; failures log at WARNING.
        log.debug(
            "%s %s: %s (%s) %s[%d]@%d",
            self.entity,
            entity_id,
            outcome.action,
            outcome.reason,
            pos.topic,
            pos.partition,
            pos.offset,
        )
        await deliveries.send(
            self.topics.results, key=entity_id.encode(), value=result.model_dump_json().encode()
        )
        if pos in self._watched:
            self._watched[pos] = "result"
        metrics.observe_result(result)

    async def conflict(self, entity_id: str, outcome: Outcome, raw: RawEvent) -> None:
        event = ConflictEvent(
            entity=self.entity,
            entity_id=entity_id,
            external=self.external_ref(outcome),
            source_version=outcome.conflict.get("source"),
            target_version=outcome.conflict.get("target"),
            source=raw.position,
            detected_ms=now_ms(),
        )
        await deliveries.send(
            self.topics.conflicts, key=entity_id.encode(), value=event.model_dump_json().encode()
        )

    async def dead_letter(
        self,
        raw: RawEvent,
        entity_id: str | None,
        reason: str,
        exc: BaseException | str,
        attempts: int,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Send a dead letter; never raises (a failed send falls back to a minimal one)."""
        error_type = type(exc).__name__ if isinstance(exc, BaseException) else "Cancelled"
        details = dict(details or {})
        original = RawRecord.from_bytes(raw.key, raw.value)
        if raw.value is not None and len(raw.value) > MAX_ORIGINAL_BYTES:
            # Keep the dead letter under the producer's request size; the record stays
            # on its topic at source.offset, and the digest identifies it.
            details |= {
                "original_bytes": len(raw.value),
                "original_sha256": hashlib.sha256(raw.value).hexdigest(),
                "original_truncated": True,
            }
            original = RawRecord.from_bytes(raw.key, raw.value[:MAX_ORIGINAL_BYTES])
        letter = DeadLetter(
            entity=self.entity, entity_id=entity_id, reason=reason, error_type=error_type,
            error=str(exc)[:2000], attempts=attempts, source=raw.position, original=original,
            failed_ms=now_ms(), details=details)  # fmt: skip
        pos = raw.position
        if pos in self._watched:
            self._watched[pos] = (reason, letter.error)
        key = entity_id.encode() if entity_id else raw.key
        try:
            await deliveries.send(
                self.topics.dead_letters, key=key, value=letter.model_dump_json().encode()
            )
        except Exception as send_exc:  # a dead letter must not take the worker down
            log.error(
                "%s %s: dead letter not sent (%s); sending it without the original",
                self.entity,
                entity_id,
                send_exc,
            )
            minimal = letter.model_copy(update={
                "original": RawRecord(key=None, value=None),
                "details": details | {"original_dropped": str(send_exc)[:200]}})  # fmt: skip
            await deliveries.send(
                self.topics.dead_letters, key=key, value=minimal.model_dump_json().encode()
            )
        log.warning(
            "%s %s: dead letter (%s: %s) %s[%d]@%d",
            self.entity,
            entity_id,
            reason,
            str(exc)[:300],
            pos.topic,
            pos.partition,
            pos.offset,
        )
        metrics.observe_dead_letter(letter)

    async def notify(
        self, entity_id: str | None, level: str, message: str, raw: RawEvent | None = None
    ) -> None:
        note = Notification(
            level=level,
            entity=self.entity,
            entity_id=entity_id,  # type: ignore[arg-type]
            message=message,
            source=raw.position if raw else None,
            created_ms=now_ms(),
        )
        log.warning("%s %s: %s", self.entity, entity_id, message)
        await deliveries.send(
            self.topics.notifications,
            key=(entity_id or "").encode(),
            value=note.model_dump_json().encode(),
        )
