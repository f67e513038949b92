"""Ready-made events for tests: a result and a dead letter, with fields to override."""

from __future__ import annotations

from typing import Any

from cdcsync.schemas.events import ConflictEvent, DeadLetter, RawRecord, SourcePosition, SyncResult

__all__ = ["POSITION", "conflict", "dead_letter", "sync_result"]

#: Where the sample events were read.
POSITION = SourcePosition(topic="cdcsync.contact", partition=1, offset=9)


def sync_result(**overrides: Any) -> SyncResult:
    """A ``create`` result of contact 7, with ``overrides`` applied."""
    fields: dict[str, Any] = {
        "entity": "contact", "entity_id": "7", "op": "create", "action": "create",
        "reason": "new row", "source": POSITION, "received_ms": 1, "completed_ms": 2,
        "latency_ms": 1.0,
    }  # fmt: skip
    return SyncResult(**(fields | overrides))


def dead_letter(**overrides: Any) -> DeadLetter:
    """A ``schema`` dead letter of contact 7, with ``overrides`` applied."""
    fields: dict[str, Any] = {
        "entity": "contact", "entity_id": "7", "reason": "schema", "error_type": "SchemaError",
        "error": "value is not JSON", "source": POSITION, "failed_ms": 3,
        "original": RawRecord.from_bytes(b'{"id":7}', b"{nope"),
    }  # fmt: skip
    return DeadLetter(**(fields | overrides))


def conflict(
    source_version: dict[str, Any], target_version: dict[str, Any], **overrides: Any
) -> tuple[ConflictEvent, SyncResult]:
    """A conflict of contact 8 parked under the manual policy, and its ``park`` result."""
    fields: dict[str, Any] = {
        "entity": "contact", "entity_id": "8", "external": None, "source": POSITION,
        "detected_ms": 1_700_000_000_000,
    }  # fmt: skip
    event = ConflictEvent(
        **(fields | overrides), source_version=source_version, target_version=target_version
    )
    result = sync_result(
        entity=event.entity, entity_id=event.entity_id, op="update", action="park",
        reason="both sides changed since the last sync (policy manual)", source=event.source,
        completed_ms=event.detected_ms,
    )  # fmt: skip
    return event, result
