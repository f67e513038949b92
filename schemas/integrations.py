"""Where an entity syncs to: integrations (named provider configurations) and targets.

``integrations`` are named configurations of a provider (two CRMs of the
``rest`` provider, each with its URL, params and credentials); an entity
points its ``target`` at one and adds its own settings. Secrets never live in
the file: an integration says where each one comes from (an environment
variable or a file), and the sink reads it at start-up.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdcsync.errors import ConfigurationError

__all__ = [
    "IntegrationConfig",
    "ResolvedTarget",
    "SecretRef",
    "TargetConfig",
    "interpolate",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
