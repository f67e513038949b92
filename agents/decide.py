"""The sync decision: a pure function of (change, state). No I/O, tested directly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cdcsync.errors import MappingError
from cdcsync.mappers.fieldmap import FieldMap, payload_hash
from cdcsync.schemas.envelope import ChangeEvent
from cdcsync.schemas.state import SyncState

__all__ = ["Decision", "decide"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one change.

    ``external_id`` is ``None`` for a create, and for a delete of an entity the
    state does not know: the apply step then looks the object up by its
    natural key, so a crash between the external write and the state write
    never leaves a second object behind.
    """

    action: Literal["create", "update", "delete", "skip"]
    reason: str
    payload: dict[str, Any] | None = None
    payload_hash: str | None = None
    external_id: str | None = None


def decide(
    change: ChangeEvent,
    state: SyncState | None,
    *,
    fieldmap: FieldMap,
    partition: int,
    offset: int,
) -> Decision:
    """Decide create, update, delete or skip for ``change`` given the entity's ``state``.

    Raises MappingError when the row cannot be mapped; the caller dead-letters it.
    """
    if state is not None and state.seen(partition, offset):
        return Decision("skip", f"already applied (redelivered offset {offset})")
    known_id = state.external_id if state is not None and state.status != "deleted" else None

    if change.op == "delete":
        if known_id is not None:
            return Decision("delete", "row deleted", external_id=known_id)
        if state is not None and state.status == "deleted":
            return Decision("skip", "external object already deleted")
        try:
            payload = fieldmap.to_external(change.before or {})
        except MappingError:
            # Without a full before image there is no natural key to look up.
            return Decision("skip", "row was never synced")
        return Decision(
            "delete", "row deleted; not in state, look up by natural key", payload=payload
        )

    payload = fieldmap.to_external(change.after or {})
    digest = payload_hash(payload)
    if known_id is None:
        return Decision("create", "new row", payload=payload, payload_hash=digest)
    if state is not None and state.payload_hash == digest and state.status == "synced":
        return Decision("skip", "no mapped field changed", external_id=known_id)
    return Decision(
        "update",
        "mapped fields changed",
        payload=payload,
        payload_hash=digest,
        external_id=known_id,
    )
