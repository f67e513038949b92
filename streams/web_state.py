"""``GET /state/{entity}/{id}``: one entity's sync state from this worker's table, never a scan.

The agent writes an entity's state to the changelog partition of Debezium's
key, so that partition's owner holds it in its local table. A key missing
from the table is answered at once: unknown (404) when this worker owns the
partition, or the owning worker's URL (421) when another does; the
changelog is never read per request. A known entity's last result and dead
letter come from the tails of their topics (``operators.status``, capped
at ``DEFAULT_WINDOW`` records of one partition), one lookup at a time.
Row values are masked unless the caller is an operator or admin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from faust.types import TP
from faust.web import Request, Response, View

from cdcsync.errors import CdcsyncError
from cdcsync.operators.common import key_partition
from cdcsync.operators.status import EntityStatus, last_event
from cdcsync.schemas.config import Config
from cdcsync.schemas.envelope import encode_key
from cdcsync.schemas.events import DeadLetter, SyncResult
from cdcsync.schemas.state import SyncState
from cdcsync.streams.guard import principal_of

__all__ = ["MASK", "mask_values", "partition_owner", "recent_events", "state_page"]

MASK = "***"


def partition_owner(app: Any, topic: str, partition: int) -> str | None:
    """``"here"`` when this worker owns the partition, else the owner's URL; ``None``: unknown."""
    tp = TP(topic, partition)
    try:
        if app.assignor.is_active(tp):
            return "here"
        for host, assignment in app.assignor.table_metadata(topic).items():
            if partition in assignment.get(topic, ()):
                return str(host)
    except (AttributeError, KeyError):
        return None
    return None


def recent_events(
    config: Config, entity: str, entity_id: str
) -> tuple[SyncResult | None, DeadLetter | None]:
    """The entity's last result and dead letter from the (capped) tails of their topics."""
    topics = config.topics
    result = last_event(config, topics.results, SyncResult, entity, entity_id)
    letter = last_event(config, topics.dead_letters, DeadLetter, entity, entity_id)
    return result, letter


def mask_values(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with row values (parked records, a dead letter's record and details) masked."""
    state = body.get("state")
    if state and state.get("parked"):
        parked = [{**p, "key": MASK, "value": MASK} for p in state["parked"]]
        body = {**body, "state": {**state, "parked": parked}}
    letter = body.get("last_dead_letter")
    if letter:
        original = {**letter["original"], "key": MASK, "value": MASK}
        details = dict.fromkeys(letter.get("details") or {}, MASK)
        body = {**body, "last_dead_letter": {**letter, "original": original, "details": details}}
    return body


def state_page(
    app: faust.App,
    config: Config,
    tables: Mapping[str, Any],
    *,
    events: Callable[[Config, str, str], tuple[SyncResult | None, DeadLetter | None]] | None = None,
) -> Callable[..., Awaitable[Response]]:
    """The view of ``GET /state/{entity}/{entity_id}`` (``events``: :func:`recent_events`)."""
    lookups = asyncio.Semaphore(2)  # Kafka reads at a time, whatever the request rate

    async def state(self: View, request: Request, entity: str, entity_id: str) -> Response:
        """One entity's sync state, last result and last dead letter."""
        if entity not in config.entities:
            return self.json({"error": f"unknown entity {entity!r}"}, status=404)
        local = tables[entity].get(entity_id)
        if local is None:
            cfg = config.entities[entity]
            key = encode_key(cfg.key, entity_id, key_type=cfg.key_type)
            topic = config.changelog_topic(entity)
            owner = partition_owner(app, topic, key_partition(key, config.topics.partitions))
            if owner is None:
                error = "partition assignment not known yet (starting or rebalancing); retry"
                return self.json({"error": error}, status=503)
            if owner != "here":
                error = f"another worker holds {entity} {entity_id}; ask it"
                return self.json({"error": error, "worker": owner}, status=421)
            unknown = EntityStatus(entity, entity_id, None, None, None, None)
            return self.json(_shown(request, unknown.to_json()), status=404)
        try:
            async with lookups:
                read = events or recent_events
                result, letter = await asyncio.to_thread(read, config, entity, entity_id)
        except CdcsyncError as exc:
            return self.json({"error": str(exc)}, status=503)
        state_ = SyncState.model_validate(local)
        status = EntityStatus(entity, entity_id, state_, "local table", result, letter)
        return self.json(_shown(request, status.to_json()))

    return state


def _shown(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The body as this caller may see it: values masked below the operator role."""
    who = principal_of(request)
    return body if who is not None and who.allows("operator") else mask_values(body)
