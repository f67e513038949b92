"""Sync-status columns: the entity's external id, link, status and last error, in its source row.

Informative only: a failure to write them is logged and never fails the sync.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from cdcsync.schemas.config import StatusColumns
from cdcsync.schemas.state import SyncState
from cdcsync.sinks.base import Sink, SourceWriter

__all__ = ["status_values", "write_status"]

log = logging.getLogger(__name__)


def status_values(
    cols: StatusColumns, state: SyncState, *, link: str | None, attempts: int
) -> dict[str, Any]:
    """The configured status columns and their values for ``state``."""
    values: dict[str, Any] = {}
    if cols.external_id:
        values[cols.external_id] = state.external_id
    if cols.link:
        values[cols.link] = link
    if cols.status:
        values[cols.status] = state.status
    if cols.synced_at and state.status == "synced":
        values[cols.synced_at] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if cols.error:
        values[cols.error] = state.last_error
    if cols.attempts:
        values[cols.attempts] = attempts
    return values


async def write_status(
    writer: SourceWriter | None,
    cols: StatusColumns | None,
    sink: Sink,
    *,
    entity: str,
    entity_id: str,
    state: SyncState,
    attempts: int,
) -> None:
    """Write the status columns of one source row, if the entity has any; never raises."""
    if cols is None or writer is None or state.status == "deleted":
        return
    link = sink.link(state.external_id) if state.external_id else None
    try:
        await writer.write_status(
            entity_id, status_values(cols, state, link=link, attempts=attempts)
        )
    except Exception as exc:  # status is informative; never fail the sync for it
        log.warning("%s %s: could not write sync-status columns: %s", entity, entity_id, exc)
