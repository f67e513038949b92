"""One synced entity's configuration: topic, key, mapping, target, source table and policies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdcsync.schemas.integrations import TargetConfig

__all__ = [
    "ChildConfig",
    "EntityConfig",
    "FinalizeConfig",
    "Guards",
    "Policies",
    "PollConfig",
    "RetryConfig",
    "SourceTable",
    "StatusColumns",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceTable(_Model):
    """The PostgreSQL table behind an entity, for writes in the pull direction."""

    schema_: str = Field(default="public", alias="schema")
    table: str


class PollConfig(_Model):
    """How external changes come back when the API has no change feed."""

    #: Seconds between polls (a leader-only Faust timer); ``None``: on demand only.
    interval_s: float | None = Field(default=None, gt=0)
    #: The change signal: the API's ``rowId``, or a hash of the mapped fields where it has none.
    version: Literal["row_id", "hash"] = "row_id"


class Policies(_Model):
    """What to do when both sides changed, on deletes, and with unknown external records."""

    conflict: Literal["source_wins", "target_wins", "newest_wins", "manual"] = "source_wins"
    #: A row deleted in PostgreSQL (or no longer matching the filter).
    source_delete: Literal["delete", "ignore", "mark"] = "delete"
    #: An object deleted in the external system.
    target_delete: Literal["delete", "ignore", "mark"] = "ignore"
    #: An external record cdcsync has never seen.
    unknown_target: Literal["create", "ignore"] = "ignore"
    #: ``mark`` writes these: external field (source deletes) and source column (target deletes).
    mark_field: str | None = None
    mark_column: str | None = None
    mark_value: Any = True
    #: ``newest_wins`` compares these timestamps (ISO 8601 or epoch values).
    source_timestamp: str | None = None
    target_timestamp: str | None = None


class Guards(_Model):
    """Limits that keep a misbehaving API (or a sync bug) from becoming a storm of writes."""

    #: An entity that writes content it already wrote within the window more than this
    #: many times is parked (``loop_suspected``) until an operator retries it.
    loop_writes: int = Field(default=5, ge=1)
    loop_window_s: float = Field(default=300.0, gt=0)
    #: A poll pass missing more than this share of the linked objects deletes nothing...
    delete_max_ratio: float = Field(default=0.1, ge=0, le=1)
    #: ...once it misses at least this many (a few missing objects are each read first).
    delete_min_count: int = Field(default=3, ge=1)


class RetryConfig(_Model):
    """Retries of transient failures: exponential backoff with full jitter, then a dead letter."""

    max_attempts: int = Field(default=5, ge=1)
    base_s: float = Field(default=0.5, gt=0)
    cap_s: float = Field(default=300.0, gt=0)
    #: Most records a parked entity queues in its state; later ones are dead-lettered
    #: (``parked_overflow``), redrivable once the entity syncs again.
    max_parked: int = Field(default=1000, ge=1)
    #: Most bytes of queued records in a parked entity's state (the state value must stay
    #: well under the producer's 1 MB request limit); the overflow is dead-lettered too.
    max_parked_bytes: int = Field(default=512 * 1024, ge=1024, le=768 * 1024)


class StatusColumns(_Model):
    """Optional columns of the source table where cdcsync writes where each row stands."""

    external_id: str | None = None
    link: str | None = None
    status: str | None = None
    synced_at: str | None = None
    error: str | None = None
    attempts: str | None = None

    def names(self) -> list[str]:
        """The configured column names."""
        return [c for c in self.model_dump().values() if c]


class ChildConfig(_Model):
    """A child entity synced under this one (an order's positions, pretix's OrderPosition)."""

    #: The child entity's name in ``entities:``.
    entity: str
    #: The child's source column holding this entity's key (the foreign key).
    column: str
    #: The child's external field set to this entity's external id (``mapped_objects``).
    field: str


class FinalizeConfig(_Model):
    """Run once per parent after its children: set a field to the children's external ids."""

    #: The parent's external field, written with the sorted list of its children's ids.
    field: str


class EntityConfig(_Model):
    """One synced entity: its topic, key, field map, target and policies."""

    topic: str
    key: str = "id"
    #: How Debezium writes the key: a JSON number for integer columns (int, bigint, serial),
    #: a string for text, varchar and uuid columns. Records cdcsync sends into the topic
    #: (retries, triggers, webhooks, replays) are keyed the same way, so they share a partition.
    key_type: Literal["integer", "text"] = "integer"
    #: External fields that identify an object without its id (looked up before creating).
    natural_key: list[str] = Field(default_factory=list)
    #: external field -> source column, or a field spec (see cdcsync.mappers)
    mapping: dict[str, Any]
    #: A Python mapper ``module:Class`` for logic the declarative map cannot say.
    mapper: str | None = None
    mapper_options: dict[str, Any] = Field(default_factory=dict)
    target: TargetConfig
    #: ``false``: this entity consumes nothing (its topic keeps the pending work).
    enabled: bool = True
    #: Where pulled changes are written; needed for two-way sync.
    source: SourceTable | None = None
    poll: PollConfig = PollConfig()
    policies: Policies = Policies()
    retry: RetryConfig = RetryConfig()
    guards: Guards = Guards()
    #: Only rows whose columns hold one of these values are synced (column -> value or list).
    filter: dict[str, Any] = Field(default_factory=dict)
    #: Only changes to these columns trigger a sync (empty: every mapped column).
    watch: list[str] = Field(default_factory=list)
    status_columns: StatusColumns | None = None
    #: Child entities: synced after this one, carrying its external id.
    children: list[ChildConfig] = Field(default_factory=list)
    #: A step run once this entity's children are all synced (e.g. to link them).
    finalize: FinalizeConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EntityConfig:
        if self.finalize is not None and not self.children:
            raise ValueError("finalize needs children: it runs once the children are synced")
        if not self.mapping:
            raise ValueError("mapping must name at least one field")
        missing = [f for f in self.natural_key if f not in self.mapping]
        if missing:
            raise ValueError(f"natural_key fields {missing} are not in mapping")
        p = self.policies
        if p.unknown_target == "create" and not self.natural_key:
            raise ValueError(
                "policies.unknown_target=create needs natural_key, so the row it inserts is "
                "matched to the external record instead of creating a second one"
            )
        if p.conflict == "newest_wins" and not (p.source_timestamp and p.target_timestamp):
            raise ValueError(
                "policies.conflict=newest_wins needs source_timestamp and target_timestamp"
            )
        if p.source_delete == "mark" and not p.mark_field:
            raise ValueError("policies.source_delete=mark needs mark_field")
        if p.target_delete == "mark" and not p.mark_column:
            raise ValueError("policies.target_delete=mark needs mark_column")
        needs_source = (
            p.target_delete != "ignore"
            or p.unknown_target == "create"
            or self.poll.interval_s is not None
            or self.status_columns is not None
        )
        if needs_source and self.source is None:
            raise ValueError(
                "two-way sync (poll, target deletes, status columns) needs source: {table: ...}"
            )
        return self
