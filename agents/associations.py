"""Associations: a parent entity and its children (pretix's Order and OrderPosition).

A child waits for its parent: its payload carries the parent's external id
(read from the parent's global ``links_`` table), and while the parent has none
the child is parked like a transient failure, so its later changes queue behind
it in order. After each child is synced (or gone) it tells its parent with a
``child`` control record through the parent's topic; the parent records the
child's external id in its state and, once every child row of the parent in
the source has one, runs its ``finalize`` step: once per list of children.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import faust

from cdcsync.agents.change import GONE, SYNCED, Decision, Outcome, OutcomeAction
from cdcsync.errors import SinkTransientError
from cdcsync.schemas.config import ChildConfig, EntityConfig
from cdcsync.schemas.envelope import ChangeEvent, Control, encode_key
from cdcsync.schemas.state import SyncState
from cdcsync.sinks.base import ExternalRecord, Sink

__all__ = [
    "ChildKeys",
    "ParentLink",
    "Readiness",
    "child_control",
    "finalize",
    "finalize_digest",
    "notify_parent",
    "parent_key",
    "publish_links",
    "readiness",
    "record_child",
    "with_parent",
]

#: How long a waiting child's first retry waits for its parent (then the retry backoff).
PARENT_WAIT_S = 1.0

#: Reads the keys of a parent's child rows from the source: (child link, parent key) -> keys.
ChildKeys = Callable[[ChildConfig, str], Awaitable[list[str]]]


@dataclass(frozen=True)
class ParentLink:
    """What a child's agent needs of its parent: the link, the ids table, the topic."""

    parent: str
    child: ChildConfig
    #: The parent's ``links_`` global table: parent key -> external id.
    links: Any
    topic: faust.TopicT
    key_field: str
    key_type: Literal["integer", "text"] = "integer"


def parent_key(change: ChangeEvent, column: str) -> str | None:
    """The parent's key held by the child row (``after``, or ``before`` for a delete)."""
    row = change.after if change.after is not None else change.before
    value = (row or {}).get(column)
    return None if value is None else str(value)


def with_parent(decision: Decision, change: ChangeEvent, link: ParentLink) -> Decision:
    """The decision with the parent's external id in its payload; waits while there is none."""
    if decision.payload is None:
        return decision
    key = parent_key(change, link.child.column)
    if key is None:
        return decision  # an orphan row: nothing to carry
    external_id = link.links.get(key)
    if external_id is None:
        raise SinkTransientError(
            f"waiting for its parent {link.parent} {key}, which is not synced yet",
            retry_after=PARENT_WAIT_S,
        )
    payload = {**decision.payload, link.child.field: external_id}
    return dataclasses.replace(decision, payload=payload)


def child_control(child_entity: str, child_id: str, external_id: str | None) -> Control:
    """The record a child sends its parent after it was synced (``external_id``) or removed."""
    return Control(
        command="child",
        child_entity=child_entity,
        child_id=child_id,
        child_external_id=external_id,
        by=child_entity,
    )


async def notify_parent(
    link: ParentLink, change: ChangeEvent, child_entity: str, external_id: str | None
) -> None:
    """Send the ``child`` control to the parent's topic, keyed like the parent's changes."""
    key = parent_key(change, link.child.column)
    if key is None:
        return
    control = child_control(child_entity, change.entity_id, external_id)
    await link.topic.send(
        key=encode_key(link.key_field, key, key_type=link.key_type),
        value=control.model_dump_json().encode(),
    )


def record_child(state: SyncState, control: Control) -> SyncState:
    """The parent's state with the child's external id recorded (or dropped when gone)."""
    assert control.child_entity is not None and control.child_id is not None
    children = {entity: dict(ids) for entity, ids in state.children.items()}
    ids = children.setdefault(control.child_entity, {})
    if control.child_external_id is None:
        ids.pop(control.child_id, None)
    else:
        ids[control.child_id] = control.child_external_id
    return state.model_copy(update={"children": children})


def finalize_digest(external_ids: Sequence[str]) -> str:
    """Digest of the children list the finalize step writes."""
    return hashlib.sha256(json.dumps(list(external_ids)).encode()).hexdigest()


@dataclass(frozen=True)
class Readiness:
    """Whether a parent can finalize: the children's ids in order, or what is missing."""

    external_ids: list[str]
    missing: int
    total: int

    @property
    def ready(self) -> bool:
        return self.missing == 0


def readiness(
    state: SyncState, child_keys: Mapping[str, Sequence[str]], *, order: Sequence[str]
) -> Readiness:
    """The children's external ids (by child entity in ``order``, then key) once all are known."""
    ids: list[str] = []
    missing = total = 0
    for entity in order:
        known = state.children.get(entity, {})
        for key in sorted(child_keys.get(entity, ()), key=_natural):
            total += 1
            if key in known:
                ids.append(known[key])
            else:
                missing += 1
    return Readiness(ids if missing == 0 else [], missing, total)


def _natural(key: str) -> tuple[int, int | str]:
    """Numeric keys in numeric order (position 10 after position 9), others as text."""
    return (0, int(key)) if key.lstrip("-").isdigit() else (1, key)


async def finalize(
    state: SyncState,
    *,
    entity_id: str,
    config: EntityConfig,
    child_keys: ChildKeys | None,
    sink: Sink,
    version_of: Callable[[ExternalRecord], str | None],
) -> tuple[OutcomeAction, str, SyncState] | None:
    """Run the parent's finalize step if every child is synced.

    Returns the action, its reason and the parent's state to store; ``None`` when
    the entity has no finalize step.
    """
    final = config.finalize
    if final is None or child_keys is None:
        return None
    if state.external_id is None or state.status != "synced":
        return "skip", "child recorded; the parent is not synced yet", state
    keys = {c.entity: await child_keys(c, entity_id) for c in config.children}
    ready = readiness(state, keys, order=[c.entity for c in config.children])
    if not ready.ready:
        return "skip", f"waiting for {ready.missing} of {ready.total} children", state
    digest = finalize_digest(ready.external_ids)
    if digest == state.finalized:
        return "skip", f"already finalized with these {ready.total} children", state
    record = await sink.patch(state.external_id, {final.field: ready.external_ids})
    updated = state.model_copy(update={"finalized": digest, "row_id": version_of(record)})
    return "finalize", f"set {final.field} to the external ids of {ready.total} children", updated


async def publish_links(
    change: ChangeEvent,
    outcome: Outcome,
    state: SyncState,
    *,
    entity: str,
    links: Any,
    parent: ParentLink | None,
) -> None:
    """Publish a parent's external id for its children; tell a child's parent about it.

    ``links`` is this entity's own ``links_`` table if it is a parent (else ``None``);
    ``parent`` its link to its parent if it is a child.
    """
    if outcome.action == "skip":
        return
    synced = outcome.action in SYNCED and state.external_id is not None
    if links is not None:
        if synced:
            links[change.entity_id] = state.external_id
        elif outcome.action in GONE:
            links.pop(change.entity_id, None)
    if parent is not None and (synced or outcome.action in GONE):
        await notify_parent(parent, change, entity, state.external_id if synced else None)
