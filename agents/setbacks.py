"""When a change cannot be applied now: park it for a retry, hold it for an operator, give up.

Each ending stores the entity's new state, writes its status columns and emits
what a person or a downstream consumer needs: nothing is lost, and nothing is
retried faster than the backoff or written again while the loop guard holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cdcsync import metrics
from cdcsync.agents.change import RawEvent, now_ms
from cdcsync.agents.emit import Emitter
from cdcsync.agents.parking import LOOP_HOLD, give_up, hold, park_failed, parked_event
from cdcsync.agents.state import StateStore
from cdcsync.errors import SinkError, SinkTransientError
from cdcsync.schemas.config import EntityConfig
from cdcsync.schemas.envelope import Origin
from cdcsync.schemas.state import SyncState

__all__ = ["Setbacks", "WriteStatus"]

log = logging.getLogger(__name__)

#: Writes the entity's status columns: (entity id, state, attempts).
WriteStatus = Callable[[str, SyncState, int], Awaitable[None]]


@dataclass(frozen=True)
class Setbacks:
    """The endings of a change that was not applied, for one entity."""

    entity: str
    config: EntityConfig
    state: StateStore
    emit: Emitter
    write_status: WriteStatus

    async def sink_error(
        self,
        raw: RawEvent,
        entity_id: str,
        state: SyncState | None,
        exc: SinkError,
        *,
        origin: Origin,
        attempt: int,
        errors: list[str],
        calls: int,
    ) -> bool:
        """Park the entity for a retry while attempts remain (False), else give up (True)."""
        transient = isinstance(exc, SinkTransientError)
        retry = self.config.retry
        if not (transient and attempt < retry.max_attempts):
            errors = [*errors, str(exc)[:500]]
            await self._give_up(raw, entity_id, state, exc, origin, attempt, errors, calls)
            return True
        metrics.observe_retry(self.entity)
        metrics.observe_parked(self.entity)
        parked = park_failed(
            state or SyncState(), parked_event(raw), origin=origin, error=str(exc)[:500],
            attempts=attempt, errors=errors, now_ms=now_ms(), retry=retry,
            retry_after=exc.retry_after,
        )  # fmt: skip
        self.state.store(entity_id, parked)
        await self.write_status(entity_id, parked, attempt)
        due = time.strftime("%H:%M:%S", time.localtime((parked.retry_at_ms or 0) / 1000))
        log.warning("%s %s: transient failure, attempt %d/%d (%s); parked until %s",
                    self.entity, entity_id, attempt, retry.max_attempts, exc, due)  # fmt: skip
        return False

    async def loop(
        self, raw: RawEvent, entity_id: str, state: SyncState, *, origin: Origin, now: int
    ) -> bool:
        """The loop guard tripped: hold the entity for an operator; nothing is written."""
        held = hold(state, parked_event(raw), self.config.guards, origin=origin, now_ms=now)
        self.state.store(entity_id, held)
        metrics.observe_guard(self.entity, LOOP_HOLD)
        metrics.observe_parked(self.entity)
        await self.write_status(entity_id, held, 0)
        await self.emit.notify(entity_id, "error", held.last_error or LOOP_HOLD, raw)
        return False

    async def _give_up(
        self,
        raw: RawEvent,
        entity_id: str,
        state: SyncState | None,
        exc: SinkError,
        origin: Origin,
        attempts: int,
        errors: list[str],
        calls: int,
    ) -> None:
        """Out of attempts, or a permanent error: the change becomes a dead letter."""
        transient = isinstance(exc, SinkTransientError)
        failed = give_up(state or SyncState(), str(exc)[:500], raw.position, origin=origin,
                         now_ms=now_ms())  # fmt: skip
        self.state.store(entity_id, failed)
        await self.write_status(entity_id, failed, attempts)
        reason = "sink_transient" if transient else "sink_permanent"
        details = {"api_calls": calls, "errors": errors}
        await self.emit.dead_letter(raw, entity_id, reason, exc, attempts, details=details)
        if transient:
            message = f"gave up after {attempts} attempts: {str(exc)[:300]}"
            await self.emit.notify(entity_id, "error", message, raw)
