"""The configuration file: one YAML document validated by these models.

``integrations`` are named configurations of a provider (two CRMs of the
``rest`` provider, each with its URL, params and credentials); an entity
points its ``target`` at one and adds its own settings. Secrets never live in
the file: an integration says where each one comes from (an environment
variable or a file), and the sink reads it at start-up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cdcsync.errors import ConfigurationError

__all__ = [
    "AppConfig",
    "ChildConfig",
    "Config",
    "EntityConfig",
    "FinalizeConfig",
    "IntegrationConfig",
    "ResolvedTarget",
    "SecretRef",
    "TargetConfig",
    "TopicsConfig",
    "default_config_path",
    "load_config",
]

CONFIG_ENV = "CDCSYNC_CONFIG"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AppConfig(_Model):
    """The Faust worker: its id (consumer group, changelog prefix), broker and store."""

    id: str = "cdcsync"
    broker: str = "kafka://127.0.0.1:9092"
    store: str = "memory://"
    web_port: int = 6066
    #: Where Faust keeps local table state (the changelog topics are the source of truth).
    datadir: str = ".cdcsync/faust"
    batch_size: int = Field(default=200, ge=1)
    batch_within_s: float = Field(default=0.05, gt=0)
    #: How often each worker looks for parked entities whose retry is due.
    retry_tick_s: float = Field(default=0.5, gt=0)
    #: Where a new consumer group starts: the whole topic, or only what comes next.
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    #: A crashed worker's partitions move to the others after this long.
    session_timeout_s: float = Field(default=10.0, gt=0)
    heartbeat_interval_s: float = Field(default=3.0, gt=0)


class DatabaseConfig(_Model):
    """The source database the pull direction writes to; the URL comes from the environment."""

    #: Environment variable holding a libpq URL; unset: the local stack's database.
    url_env: str = "CDCSYNC_DATABASE_URL"

    def url(self) -> str:
        """The database URL (a secret: never log it)."""
        if value := os.environ.get(self.url_env):
            return value
        from cdcsync.stack.settings import StackSettings

        return StackSettings().pg_dsn()


class TopicsConfig(_Model):
    """The shared topics and the partition count every co-partitioned topic uses."""

    results: str = "cdcsync.results"
    dead_letters: str = "cdcsync.deadletters"
    conflicts: str = "cdcsync.conflicts"
    notifications: str = "cdcsync.notifications"
    #: One record per outgoing call (recipient, method, entity, payload digest).
    audit: str = "cdcsync.audit"
    partitions: int = Field(default=4, ge=1)


class SecretRef(_Model):
    """Where one secret comes from: an environment variable or a file (Docker, Kubernetes)."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of `env: VARIABLE` or `file: /path/to/secret`")
        return self

    def describe(self) -> str:
        """Where the secret is read from, for messages (never the value)."""
        return f"environment variable {self.env}" if self.env else f"file {self.file}"


class IntegrationConfig(_Model):
    """One configuration of a provider, shared by the entities whose target names it."""

    provider: str
    #: A disabled integration's entities consume nothing; their topics keep the pending work.
    enabled: bool = True
    description: str | None = None
    #: Provider settings every entity of this integration gets (entities may add their own).
    settings: dict[str, Any] = Field(default_factory=dict)
    #: Non-secret values, usable as ``${params.NAME}`` in settings and mapper_options.
    params: dict[str, Any] = Field(default_factory=dict)
    #: Provider settings read from the environment or files at start-up, never from this file.
    secrets: dict[str, SecretRef] = Field(default_factory=dict)


class TargetConfig(_Model):
    """Where an entity is synced to: an integration by name, or a provider inline."""

    integration: str | None = None
    provider: str | None = None
    #: Settings of this entity (e.g. its collection path), over the integration's.
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _by_name(cls, data: Any) -> Any:
        """``target: crm`` is shorthand for ``target: {integration: crm}``."""
        return {"integration": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_kind(self) -> TargetConfig:
        if (self.integration is None) == (self.provider is None):
            raise ValueError(
                "give either `integration: <name>` (a configuration in `integrations:`) "
                "or `provider: <identifier>` with its settings inline"
            )
        return self


class ResolvedTarget(_Model):
    """An entity's target with its integration folded in: what the sink is built from."""

    integration: str | None
    provider: str
    enabled: bool
    settings: dict[str, Any]
    params: dict[str, Any]
    secrets: dict[str, SecretRef]


_PARAM = re.compile(r"\$\{params\.([A-Za-z_][A-Za-z0-9_]*)\}")


def interpolate(value: Any, params: dict[str, Any], *, where: str) -> Any:
    """``${params.NAME}`` in strings (nested in dicts and lists) replaced by the param."""
    if isinstance(value, dict):
        return {k: interpolate(v, params, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, params, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    if (whole := _PARAM.fullmatch(value)) and whole.group(1) in params:
        return params[whole.group(1)]  # keeps the param's type (a number stays a number)

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ConfigurationError(
                f"{where}: unknown param {name!r} in {value!r}; the integration's params: {known}"
            )
        return str(params[name])

    return _PARAM.sub(sub, value)


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


class RetryConfig(_Model):
    """Retries of transient failures: exponential backoff with full jitter, then a dead letter."""

    max_attempts: int = Field(default=5, ge=1)
    base_s: float = Field(default=0.5, gt=0)
    cap_s: float = Field(default=300.0, gt=0)


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


class Config(_Model):
    """The whole file."""

    app: AppConfig = AppConfig()
    topics: TopicsConfig = TopicsConfig()
    database: DatabaseConfig = DatabaseConfig()
    integrations: dict[str, IntegrationConfig] = Field(default_factory=dict)
    entities: dict[str, EntityConfig]

    @model_validator(mode="after")
    def _references(self) -> Config:
        for name, entity in self.entities.items():
            ref = entity.target.integration
            if ref is not None and ref not in self.integrations:
                known = ", ".join(repr(n) for n in self.integrations) or "none defined"
                raise ValueError(
                    f"entities.{name}.target: unknown integration {ref!r} ({known}); "
                    "add it under `integrations:` or fix the name"
                )
        parents: dict[str, str] = {}
        for name, entity in self.entities.items():
            for child in entity.children:
                where = f"entities.{name}.children"
                if child.entity not in self.entities or child.entity == name:
                    raise ValueError(
                        f"{where}: {child.entity!r} is not another entity of this file; "
                        "declare the child under `entities:` too"
                    )
                if (other := parents.setdefault(child.entity, name)) != name:
                    raise ValueError(
                        f"{where}: {child.entity!r} already has the parent {other!r}; "
                        "a child entity has one parent"
                    )
                if self.entities[child.entity].source is None:
                    raise ValueError(
                        f"{where}: the child {child.entity!r} needs `source: {{table: ...}}`, "
                        "where the parent finds its children by the column "
                        f"{child.column!r}"
                    )
        topics: dict[str, str] = {}
        for name, entity in self.entities.items():
            if (other := topics.setdefault(entity.topic, name)) != name:
                raise ValueError(
                    f"entities {other!r} and {name!r} both read topic {entity.topic!r}; each "
                    "entity needs its own topic (route a table to a second topic with a second "
                    "connector in connect/ to sync it to two targets)"
                )
        return self

    def target(self, entity: str) -> ResolvedTarget:
        """The entity's provider, settings (integration's, then its own), params and secrets."""
        e = self.entities[entity]
        where = f"entities.{entity}.target.settings"
        if e.target.integration is None:
            assert e.target.provider is not None
            return ResolvedTarget(
                integration=None, provider=e.target.provider, enabled=e.enabled,
                settings=e.target.settings, params={}, secrets={},
            )  # fmt: skip
        i = self.integrations[e.target.integration]
        settings = {
            **interpolate(i.settings, i.params, where=f"integrations.{e.target.integration}"),
            **interpolate(e.target.settings, i.params, where=where),
        }
        return ResolvedTarget(
            integration=e.target.integration, provider=i.provider, enabled=i.enabled and e.enabled,
            settings=settings, params=i.params, secrets=i.secrets,
        )  # fmt: skip

    def parent_of(self, entity: str) -> tuple[str, ChildConfig] | None:
        """The entity's parent and the link to it, if it is a declared child."""
        for name, parent in self.entities.items():
            for child in parent.children:
                if child.entity == entity:
                    return name, child
        return None

    def links_table(self, entity: str) -> str:
        """Name of the global table mapping a parent's keys to its external ids."""
        return f"links_{entity}"

    def enabled_entities(self) -> list[str]:
        """The entities that consume: enabled themselves and through their integration."""
        return [name for name in self.entities if self.target(name).enabled]

    def refs_table(self, entity: str) -> str:
        """Name of the global table mapping external ids to entity keys (``make_ref``)."""
        return f"refs_{entity}"

    def state_table(self, entity: str) -> str:
        """Name of the Faust table holding the sync state of ``entity``."""
        return f"state_{entity}"

    def changelog_topic(self, entity: str, table: str | None = None) -> str:
        """The changelog topic Faust uses for the entity's state (or another) table."""
        return f"{self.app.id}-{table or self.state_table(entity)}-changelog"


def default_config_path() -> Path:
    """``$CDCSYNC_CONFIG``, else ``./cdcsync.yaml``, else the demo's configuration."""
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    local = Path("cdcsync.yaml")
    if local.exists():
        return local
    return Path(__file__).resolve().parent.parent / "demo" / "cdcsync.yaml"


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate the configuration; errors name the file and the path inside it."""
    path = Path(path) if path is not None else default_config_path()
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"{path}: no such configuration file; set {CONFIG_ENV} or create ./cdcsync.yaml "
            "(demo/cdcsync.yaml is an example)"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Config.model_validate(data or {})
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigurationError(
            f"{path}: invalid configuration ({exc.error_count()} errors):\n" + "\n".join(lines)
        ) from exc
