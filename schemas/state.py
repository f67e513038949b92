"""The sync state of one entity, kept in a changelog-backed Faust table."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["SyncState"]


class SyncState(BaseModel):
    """What cdcsync knows about one entity's external copy; small, JSON in the table."""

    model_config = ConfigDict(frozen=True)

    external_id: str | None = None
    #: ``rowId`` the external system returned for our last write.
    row_id: str | None = None
    #: External versions our own writes replaced after a conflict: events carrying them are stale.
    superseded: list[str] = []
    #: sha256 of the canonical JSON of the payload last pushed.
    payload_hash: str | None = None
    #: failed: the last source change is not pushed yet; conflict: parked for an operator.
    status: Literal["synced", "deleted", "failed", "conflict"] = "synced"
    last_error: str | None = None
    #: Source position of the last event applied, to skip redeliveries.
    last_partition: int | None = None
    last_offset: int | None = None
    updated_ms: int | None = None

    def seen(self, partition: int, offset: int) -> bool:
        """True when the event at ``partition``/``offset`` was already applied."""
        return (
            self.last_partition == partition
            and self.last_offset is not None
            and offset <= self.last_offset
        )
