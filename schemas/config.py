"""The configuration file: one YAML document validated by these models.

The root :class:`Config` holds the worker's settings (``app``), the shared
topics, the source database and the entities; an entity's own shape is in
:mod:`cdcsync.schemas.entities`, where it syncs to in
:mod:`cdcsync.schemas.integrations` (both re-exported here). These are shapes
only: reading the file and the environment is :mod:`cdcsync.streams.config`'s
job, which resolves the database URL into the ``Config`` it returns.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.entities import (
    ChildConfig,
    EntityConfig,
    FinalizeConfig,
    Guards,
    Policies,
    PollConfig,
    RetryConfig,
    SourceTable,
    StatusColumns,
)
from cdcsync.schemas.integrations import (
    IntegrationConfig,
    ResolvedTarget,
    SecretRef,
    TargetConfig,
    interpolate,
)
from cdcsync.schemas.kafka import KafkaSecurity
from cdcsync.schemas.web import WebConfig

__all__ = [
    "AppConfig",
    "ChildConfig",
    "Config",
    "DatabaseConfig",
    "EntityConfig",
    "FinalizeConfig",
    "Guards",
    "IntegrationConfig",
    "KafkaSecurity",
    "Policies",
    "PollConfig",
    "ResolvedTarget",
    "RetryConfig",
    "SecretRef",
    "SourceTable",
    "StatusColumns",
    "TargetConfig",
    "TopicsConfig",
    "WebConfig",
    "interpolate",
    "target_where",
]

log = logging.getLogger(__name__)

#: AppConfig keys of cdcsync 0.x, read as max_in_flight (see AppConfig._batch_keys).
_OLD_BATCH_KEYS = {"batch_size", "batch_within_s"}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AppConfig(_Model):
    """The Faust worker: its id (consumer group, changelog prefix), broker and store."""

    id: str = "cdcsync"
    broker: str = "kafka://127.0.0.1:9092"
    #: How every Kafka client (worker, tools, bench) connects: TLS, SASL (default PLAINTEXT).
    security: KafkaSecurity = KafkaSecurity()
    store: str = "memory://"
    web_port: int = 6066
    #: The HTTP endpoints: bind address (loopback by default), tokens, sessions.
    web: WebConfig = WebConfig()
    #: Where Faust keeps local table state (the changelog topics are the source of truth).
    datadir: str = ".cdcsync/faust"
    #: Records of one partition taken and not yet ended: the pipeline's bound. Different
    #: keys run concurrently within it, each key in order (see agents/pipeline.py).
    max_in_flight: int = Field(default=500, ge=1)
    #: How often each worker looks for parked entities whose retry is due.
    retry_tick_s: float = Field(default=0.5, gt=0)
    #: Where a new consumer group starts: the whole topic, or only what comes next.
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    #: A crashed worker's partitions move to the others after this long.
    session_timeout_s: float = Field(default=10.0, gt=0)
    heartbeat_interval_s: float = Field(default=3.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _batch_keys(cls, data: Any) -> Any:
        """Accept the batch settings of cdcsync 0.x: records are no longer taken in batches."""
        if not isinstance(data, dict) or not _OLD_BATCH_KEYS & data.keys():
            return data
        data = dict(data)
        size, data_within = data.pop("batch_size", None), data.pop("batch_within_s", None)
        if size is not None:
            data.setdefault("max_in_flight", size)
        log.warning(
            "app.batch_size and app.batch_within_s are deprecated: records are no longer "
            "taken in batches; app.max_in_flight (%s) bounds the records in flight per "
            "partition. Remove the old keys.%s",
            data.get("max_in_flight", 500),
            "" if data_within is None else " batch_within_s is ignored.",
        )
        return data


class DatabaseConfig(_Model):
    """The source database the pull direction writes to; its URL comes from the environment.

    The file names the variable; the loader (``cdcsync.streams.config.load_config``)
    reads it, or falls back to the local stack's database, and gives the URL to
    :meth:`Config.with_database_url`. It is kept out of the fields, so it is
    neither read from the file nor dumped, exported or shown in a repr.
    """

    #: Environment variable holding a libpq URL; unset: the local stack's database.
    url_env: str = "CDCSYNC_DATABASE_URL"
    _url: SecretStr | None = PrivateAttr(default=None)

    def url(self) -> str:
        """The database URL the loader resolved (a secret: never log it)."""
        if self._url is None:
            raise ConfigurationError(
                "the database URL was not resolved: read the configuration with "
                "cdcsync.streams.config.load_config, or give it with Config.with_database_url"
            )
        return self._url.get_secret_value()

    def with_url(self, url: str) -> DatabaseConfig:
        """A copy whose :meth:`url` returns ``url``."""
        copy = self.model_copy()
        copy._url = SecretStr(url)
        return copy


class TopicsConfig(_Model):
    """The shared topics and the partition count every co-partitioned topic uses."""

    results: str = "cdcsync.results"
    dead_letters: str = "cdcsync.deadletters"
    conflicts: str = "cdcsync.conflicts"
    notifications: str = "cdcsync.notifications"
    #: One record per outgoing call (recipient, method, entity, payload digest).
    audit: str = "cdcsync.audit"
    partitions: int = Field(default=4, ge=1)


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

    def polled_table(self, entity: str) -> str:
        """Name of the global table of the versions the poller last published (``Poller``)."""
        return f"polled_{entity}"

    def state_table(self, entity: str) -> str:
        """Name of the Faust table holding the sync state of ``entity``."""
        return f"state_{entity}"

    def changelog_topic(self, entity: str, table: str | None = None) -> str:
        """The changelog topic Faust uses for the entity's state (or another) table."""
        return f"{self.app.id}-{table or self.state_table(entity)}-changelog"

    def with_database_url(self, url: str) -> Config:
        """A copy whose ``database.url()`` returns ``url`` (the loader resolves it)."""
        return self.model_copy(update={"database": self.database.with_url(url)})


def target_where(config: Config, name: str) -> str:
    """Where an entity's target settings come from, for error messages."""
    integration = config.entities[name].target.integration
    where = f"entities.{name}.target"
    return where if integration is None else f"{where} (integrations.{integration})"
