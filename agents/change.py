"""The types one change carries through the agent: the record, the decision, the outcome.

A record is read (``RawEvent``), decided (``Decision``, by ``agents.decide``),
applied (``Outcome``, by ``agents.apply``), and ends as one result or dead letter
(``agents.emit``). Each step takes the previous step's type and nothing more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from cdcsync.schemas.events import SourcePosition
from cdcsync.sinks.base import ExternalRecord

__all__ = [
    "GONE",
    "SYNCED",
    "WRITES",
    "Action",
    "Decision",
    "Outcome",
    "OutcomeAction",
    "RawEvent",
    "now_ms",
]


def now_ms() -> int:
    """Wall-clock milliseconds, the unit of every timestamp in events."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class RawEvent:
    """A record as consumed (or as parked): its bytes, where it was read, when."""

    key: bytes | None
    value: bytes | None
    position: SourcePosition
    received_ms: int


Action = Literal[
    "create",  # create the external object (after a natural-key lookup)
    "update",  # push the mapped row to the external object
    "delete",  # delete the external object
    "mark_target",  # source row deleted, policy mark: set the mark field externally
    "pull",  # write the external fields into the source row
    "pull_delete",  # external object deleted, policy delete: delete the source row
    "mark_source",  # external object deleted, policy mark: set the mark column
    "push_current",  # conflict on an external event: the policy decides against the current row
    "verify",  # read the external copy and repair it if it differs from the current row
    "park",  # conflict under the manual policy: wait for an operator
    "hold",  # the loop guard: park the entity for an operator, write nothing
    "skip",
]

#: Decisions that write to the external system (what the loop guard counts).
WRITES: frozenset[str] = frozenset(
    {"create", "update", "delete", "mark_target", "push_current", "verify"}
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one change, and with what.

    ``external_id`` is ``None`` for a create, and for a delete of an entity the
    state does not know: the apply step then looks the object up by its
    natural key, so a crash between the external write and the state write
    never leaves a second object behind. ``expected_version`` is the external
    version the push assumes; the API refuses the write if it moved on.
    """

    action: Action
    reason: str
    payload: dict[str, Any] | None = None
    payload_hash: str | None = None
    external_id: str | None = None
    expected_version: str | None = None
    fields: dict[str, Any] | None = None
    version: str | None = None
    #: External versions this entity already synced: a pull finding one of them is stale.
    known_versions: tuple[str, ...] = ()


OutcomeAction = Literal[
    "create", "update", "delete", "mark_target", "pull", "pull_delete", "mark_source", "park",
    "finalize", "skip",
]  # fmt: skip

#: Outcomes after which the entity is in sync, and those after which it is gone.
SYNCED: frozenset[str] = frozenset({"create", "update", "pull", "mark_source"})
GONE: frozenset[str] = frozenset({"delete", "pull_delete", "mark_target"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What was done, and what the state must remember afterwards."""

    action: OutcomeAction
    reason: str
    external_id: str | None
    record: ExternalRecord | None = None
    #: The external version after the action (``rowId`` or fields hash).
    version: str | None = None
    #: Hash of the source payload both sides now agree on.
    payload_hash: str | None = None
    #: For ``park``: both versions, for the conflict event.
    conflict: dict[str, Any] = field(default_factory=dict)
    #: The external version a conflict resolution overwrote (events carrying it are stale).
    superseded: str | None = None
    #: For ``pull``: the database's clock when the row was written (``sinks.base.WRITTEN_MS``).
    written_ms: int | None = None
