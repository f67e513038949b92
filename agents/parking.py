"""Parking: a failing entity waits aside, its later events queue behind it, the rest flow.

Pure functions over ``SyncState``; the agent persists the result in the table,
so parked events survive a restart.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Sequence

from cdcsync.agents.change import RawEvent
from cdcsync.agents.retry import backoff_delay
from cdcsync.agents.state import WRITE_MARKS
from cdcsync.schemas.config import Guards, RetryConfig
from cdcsync.schemas.envelope import Origin
from cdcsync.schemas.events import RawRecord, SourcePosition
from cdcsync.schemas.state import ParkedEvent, SyncState, WriteMark

__all__ = [
    "compact",
    "overflow",
    "park_behind",
    "park_carried",
    "park_failed",
    "parked_event",
    "to_bytes",
    "to_parked",
    "to_raw",
    "unpark",
]


def to_parked(
    key: bytes | None,
    value: bytes | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    received_ms: int,
) -> ParkedEvent:
    """Keep a record's bytes in the state: as text when UTF-8, else base64."""
    raw = RawRecord.from_bytes(key, value)
    return ParkedEvent(
        key=raw.key,
        value=raw.value,
        encoding=raw.encoding,
        topic=topic,
        partition=partition,
        offset=offset,
        received_ms=received_ms,
    )


#: The ``hold`` of an entity parked by the loop guard (``agents.decide.write_loops``).
LOOP_HOLD = "loop_suspected"


def parked_event(raw: RawEvent) -> ParkedEvent:
    """The record as the entity's state keeps it while it waits (compacted)."""
    p = raw.position
    return to_parked(
        raw.key,
        compact(raw.value),
        topic=p.topic,
        partition=p.partition,
        offset=p.offset,
        received_ms=raw.received_ms,
    )


def compact(value: bytes | None) -> bytes | None:
    """A Debezium value with only what re-running it needs: ``op``, the row it syncs (the
    ``before`` image of a delete, else ``after``), the commit time and snapshot mark.

    Other values (external, control, malformed records) are kept as they are.
    """
    try:
        data = json.loads(value) if value else None
    except ValueError:
        return value
    if not isinstance(data, dict) or "op" not in data or "origin" in data:
        return value
    side = "before" if data.get("op") == "d" else "after"
    given = data.get("source")
    source = given if isinstance(given, dict) else {}
    kept = {k: source[k] for k in ("ts_ms", "snapshot") if source.get(k) not in (None, "false")}
    small = {"op": data["op"], side: data.get(side), "source": kept, "ts_ms": data.get("ts_ms")}
    return json.dumps(small, separators=(",", ":")).encode()


def parked_size(event: ParkedEvent) -> int:
    """Bytes a parked record takes in the state (its key and value text)."""
    return len(event.key or "") + len(event.value or "")


def overflow(state: SyncState, event: ParkedEvent, retry: RetryConfig) -> str | None:
    """Why ``event`` cannot join the entity's parked queue (count or bytes), or ``None``."""
    count, size = len(state.parked), sum(parked_size(p) for p in state.parked)
    if count >= retry.max_parked:
        return f"the entity already has {count} parked events (retry.max_parked)"
    if size + parked_size(event) > retry.max_parked_bytes:
        return (
            f"queuing it would take the entity's {count} parked events past "
            f"{retry.max_parked_bytes} bytes (retry.max_parked_bytes)"
        )
    return None


def to_raw(parked: ParkedEvent) -> RawEvent:
    """The parked record as it was consumed: original bytes and source position."""
    key, value = to_bytes(parked)
    position = SourcePosition(topic=parked.topic, partition=parked.partition, offset=parked.offset)
    return RawEvent(key, value, position, parked.received_ms)


def to_bytes(parked: ParkedEvent) -> tuple[bytes | None, bytes | None]:
    """The record's original key and value bytes."""
    if parked.encoding == "base64":
        dec = base64.b64decode
        return (
            dec(parked.key) if parked.key is not None else None,
            dec(parked.value) if parked.value is not None else None,
        )
    return (
        parked.key.encode() if parked.key is not None else None,
        parked.value.encode() if parked.value is not None else None,
    )


def _pending(state: SyncState, origin: Origin) -> bool:
    """Whether a source change waits once a record of ``origin`` is parked or fails."""
    return origin == "source" or state.unpushed


def park_failed(
    state: SyncState,
    event: ParkedEvent,
    *,
    origin: Origin,
    error: str,
    attempts: int,
    errors: list[str],
    now_ms: int,
    retry: RetryConfig,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> SyncState:
    """Park the entity after a transient failure of ``event`` (the first parked event)."""
    delay = backoff_delay(
        attempts, base_s=retry.base_s, cap_s=retry.cap_s, retry_after=retry_after, rng=rng
    )
    rest = [p for p in state.parked if (p.partition, p.offset) != (event.partition, event.offset)]
    return state.model_copy(
        update={
            "status": "retrying",
            "source_pending": _pending(state, origin),
            "last_error": error,
            "attempts": attempts,
            "errors": [*errors, error][-retry.max_attempts :],
            "retry_at_ms": now_ms + int(delay * 1000),
            "parked": [event, *rest],
            "updated_ms": now_ms,
        }
    )


def give_up(
    state: SyncState, error: str, position: SourcePosition, *, origin: Origin, now_ms: int
) -> SyncState:
    """The state after a change failed for good: no retry left, its position applied.

    The failed call may have been a write that landed (an answer lost or unreadable), so
    it counts as a write of unknown content for the loop guard: a failure that repeats on
    every poll ends held, not as a storm of writes and dead letters.
    """
    marks = [*state.writes, WriteMark(at_ms=now_ms, digest=None)][-WRITE_MARKS:]
    return state.model_copy(
        update={
            "status": "permanently_failed",
            "source_pending": _pending(state, origin),
            "attempts": 0,
            "errors": [],
            "retry_at_ms": None,
            "last_error": error,
            "last_partition": position.partition,
            "last_offset": position.offset,
            "updated_ms": now_ms,
            "writes": marks,
        }
    )


def hold(
    state: SyncState, event: ParkedEvent, guards: Guards, *, origin: Origin, now_ms: int
) -> SyncState:
    """Park the entity for an operator: its records queue, nothing is written, no timer."""
    error = (
        f"loop suspected: more than {guards.loop_writes} writes of content already written "
        f"within {guards.loop_window_s:g}s; writes stopped. Check what the API does to the "
        "object, then `cdcsync parked retry` (or cancel) the entity"
    )
    rest = [p for p in state.parked if (p.partition, p.offset) != (event.partition, event.offset)]
    return state.model_copy(
        update={"status": "retrying", "hold": LOOP_HOLD, "last_error": error, "attempts": 0,
                "retry_at_ms": None, "parked": [event, *rest], "updated_ms": now_ms,
                "source_pending": _pending(state, origin)}
    )  # fmt: skip


def release(state: SyncState) -> SyncState:
    """An operator's retry: the hold and the write history are cleared."""
    return state.model_copy(update={"hold": None, "writes": []})


def park_behind(state: SyncState, event: ParkedEvent) -> SyncState:
    """Queue a later event behind the failed one; a redelivered one is not queued twice.

    A queued row change leaves ``source_pending`` as it is: it may be the echo of our own
    pull, and a retried pull reads the row and meets the conflict policy only if it
    really changed.
    """
    if any((p.partition, p.offset) == (event.partition, event.offset) for p in state.parked):
        return state
    return state.model_copy(update={"parked": [*state.parked, event]})


def park_carried(
    state: SyncState | None, carried: Sequence[tuple[RawEvent, object]], carrier: RawEvent
) -> SyncState:
    """The coalesced changes a parked carrier carried, queued in front of it, in order.

    Their own records run again before the carrier's (uncoalesced), so none of them
    is lost if the carrier fails for good.
    """
    base = state or SyncState()
    events = [parked_event(raw) for raw, _ in carried]
    at = carrier.position
    queued = {(e.partition, e.offset) for e in events}
    keep = [p for p in base.parked if (p.partition, p.offset) not in queued]
    index = next(
        (i for i, p in enumerate(keep) if (p.partition, p.offset) == (at.partition, at.offset)),
        0,
    )
    parked = [*keep[:index], *events, *keep[index:]]
    return base.model_copy(update={"parked": parked, "source_pending": True})


def unpark(state: SyncState) -> SyncState:
    """The state with no parked events left and the retry bookkeeping cleared."""
    return state.model_copy(update={"parked": [], "attempts": 0, "errors": [], "retry_at_ms": None})
