"""The sync state of one entity, kept in a changelog-backed Faust table."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["ParkedEvent", "SyncState", "WriteMark"]


class ParkedEvent(BaseModel):
    """A record waiting behind a failed one of the same entity, kept in the state (durable)."""

    model_config = ConfigDict(frozen=True)

    key: str | None
    value: str | None
    encoding: Literal["utf-8", "base64"] = "utf-8"
    topic: str
    partition: int
    offset: int
    received_ms: int


class WriteMark(BaseModel):
    """One external write of the entity: when, and the hash of the content it wrote."""

    model_config = ConfigDict(frozen=True)

    at_ms: int
    digest: str | None = None


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
    #: The database's clock when our last pull wrote the row: a source record committed
    #: before it shows the row as it was before, and is stale.
    pulled_ms: int | None = None
    #: retrying: events are parked until ``retry_at_ms``; permanently_failed: the last source
    #: change could not be pushed; conflict: parked for an operator (policy manual).
    status: Literal["synced", "deleted", "retrying", "permanently_failed", "conflict"] = "synced"
    last_error: str | None = None
    #: A source change the external system has not got yet (parked, or failed for good);
    #: ``None`` in states written before it was kept (then read from ``status``).
    source_pending: bool | None = None
    #: While retrying: attempts made for the first parked event, their errors, when next.
    attempts: int = 0
    errors: list[str] = []
    retry_at_ms: int | None = None
    #: The failed event first, then the later events of this entity, in order.
    parked: list[ParkedEvent] = []
    #: Why a retrying entity waits for an operator instead of a timer (``loop_suspected``).
    hold: str | None = None
    #: The entity's latest external writes, for the loop guard (``agents.guards``).
    writes: list[WriteMark] = []
    #: Source position of the last event applied, to skip redeliveries.
    last_partition: int | None = None
    last_offset: int | None = None
    updated_ms: int | None = None
    #: A parent's synced children: child entity -> child key -> external id.
    children: dict[str, dict[str, str]] = {}
    #: Digest of the children list the finalize step last wrote (runs once per list).
    finalized: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _legacy_status(cls, value: object) -> object:
        # States written before 0.1's parking said "failed": read them, don't crash on them.
        return "permanently_failed" if value == "failed" else value

    @property
    def unpushed(self) -> bool:
        """True when a source change is not in the external system yet. A parked or failed
        *pull* is not one: its retry pulls, it does not meet the conflict policy."""
        if self.source_pending is not None:
            return self.source_pending
        return self.status in ("retrying", "permanently_failed")

    @property
    def parked_for_retry(self) -> bool:
        """Parked events the retry timer redrives: behind a transient failure, or left by a
        drain that a crash stopped between two of them (the status is then the last
        event's). Not those held for an operator: a loop guard's hold, a manual conflict."""
        return retries(self.status, bool(self.parked), self.hold is not None)

    def seen(self, partition: int, offset: int) -> bool:
        """True when the event at ``partition``/``offset`` was already applied."""
        return (
            self.last_partition == partition
            and self.last_offset is not None
            and offset <= self.last_offset
        )


def retries(status: str | None, parked: bool, held: bool) -> bool:
    """Whether parked events in this status are the retry timer's (see ``parked_for_retry``)."""
    return parked and not held and status in ("retrying", "synced", "deleted", "permanently_failed")
