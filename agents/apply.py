"""Carry out a decision against a sink: the I/O half of the sync step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cdcsync.agents.decide import Decision
from cdcsync.errors import SinkPermanentError
from cdcsync.sinks.base import ExternalRecord, Sink

__all__ = ["Outcome", "apply_decision"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the sink did: the action taken, why, and the object it left."""

    action: Literal["create", "update", "delete", "skip"]
    reason: str
    record: ExternalRecord | None
    external_id: str | None


def _same(record: ExternalRecord, payload: Mapping[str, Any]) -> bool:
    return all(record.fields.get(k) == v for k, v in payload.items())


async def _find(
    sink: Sink, payload: Mapping[str, Any], natural_key: Sequence[str]
) -> ExternalRecord | None:
    if not natural_key:
        return None
    return await sink.find({k: payload.get(k) for k in natural_key})


async def apply_decision(decision: Decision, *, sink: Sink, natural_key: Sequence[str]) -> Outcome:
    """Apply ``decision``; raises SinkError subclasses for the caller to retry or dead-letter."""
    if decision.action == "skip":
        return Outcome("skip", decision.reason, None, decision.external_id)

    if decision.action == "delete":
        external_id = decision.external_id
        if external_id is None:
            found = await _find(sink, decision.payload or {}, natural_key)
            if found is None:
                return Outcome("skip", "row deleted; no external object to delete", None, None)
            external_id = found.id
        gone = await sink.delete(external_id)
        reason = decision.reason if gone else "external object was already gone"
        return Outcome("delete", reason, None, external_id)

    payload = decision.payload or {}
    if decision.action == "update" and decision.external_id is not None:
        try:
            record = await sink.update(decision.external_id, payload)
            return Outcome("update", decision.reason, record, record.id)
        except SinkPermanentError as exc:
            if exc.status_code != 404:
                raise
            # Deleted on the external side: fall through and create it again.
            reason = "external object was gone; re-created"
    else:
        reason = decision.reason

    found = await _find(sink, payload, natural_key)
    if found is not None:
        if _same(found, payload):
            return Outcome(
                "update", "adopted existing object (natural key); already equal", found, found.id
            )
        record = await sink.update(found.id, payload)
        return Outcome(
            "update", "adopted existing object (natural key); updated", record, record.id
        )
    record = await sink.create(payload)
    return Outcome("create", reason, record, record.id)
