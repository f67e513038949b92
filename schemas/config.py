"""The configuration file: one YAML document validated by these models.

Secrets never live in the file: a target names the environment variable that
holds its token (``token_env``), and the sink reads it at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cdcsync.errors import ConfigurationError

__all__ = [
    "AppConfig",
    "Config",
    "EntityConfig",
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
    #: A crashed worker's partitions move to the others after this long.
    session_timeout_s: float = Field(default=10.0, gt=0)
    heartbeat_interval_s: float = Field(default=3.0, gt=0)


class TopicsConfig(_Model):
    """The shared topics and the partition count every co-partitioned topic uses."""

    results: str = "cdcsync.results"
    dead_letters: str = "cdcsync.deadletters"
    partitions: int = Field(default=4, ge=1)


class TargetConfig(_Model):
    """Where an entity is synced to: a registered provider and its settings."""

    provider: str
    settings: dict[str, Any] = Field(default_factory=dict)


class EntityConfig(_Model):
    """One synced entity: its topic, key, field map and target."""

    topic: str
    key: str = "id"
    #: External fields that identify an object without its id (looked up before creating).
    natural_key: list[str] = Field(default_factory=list)
    #: external field -> source column
    mapping: dict[str, str]
    target: TargetConfig

    @model_validator(mode="after")
    def _natural_key_is_mapped(self) -> EntityConfig:
        missing = [f for f in self.natural_key if f not in self.mapping]
        if missing:
            raise ValueError(f"natural_key fields {missing} are not in mapping")
        if not self.mapping:
            raise ValueError("mapping must name at least one field")
        return self


class Config(_Model):
    """The whole file."""

    app: AppConfig = AppConfig()
    topics: TopicsConfig = TopicsConfig()
    entities: dict[str, EntityConfig]

    def state_table(self, entity: str) -> str:
        """Name of the Faust table holding the sync state of ``entity``."""
        return f"state_{entity}"

    def changelog_topic(self, entity: str) -> str:
        """The changelog topic Faust uses for the entity's state table."""
        return f"{self.app.id}-{self.state_table(entity)}-changelog"


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
