"""What ``cdcsync providers list`` shows: each provider, its settings and defaults, its users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdcsync.schemas.config import Config
from cdcsync.sinks.registry import SinkRegistry, default_registry

__all__ = ["ProviderInfo", "SettingInfo", "describe_providers"]


@dataclass(frozen=True)
class SettingInfo:
    """One setting of a provider: name, type, default (or required), description."""

    name: str
    type: str
    required: bool
    default: Any
    secret: bool
    description: str | None


@dataclass(frozen=True)
class ProviderInfo:
    """One provider as installed, and the integrations of the configuration that use it."""

    identifier: str
    display_name: str
    description: str
    settings: list[SettingInfo] = field(default_factory=list)
    integrations: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "identifier": self.identifier,
            "display_name": self.display_name,
            "description": self.description,
            "integrations": self.integrations,
            "error": self.error,
            "settings": [
                {
                    "name": s.name,
                    "type": s.type,
                    "required": s.required,
                    "default": None if s.required else s.default,
                    "secret": s.secret,
                    "description": s.description,
                }
                for s in self.settings
            ],
        }


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "").replace("pydantic.types.", "")


def describe_providers(
    config: Config | None = None, registry: SinkRegistry = default_registry
) -> list[ProviderInfo]:
    """Every installed provider (a broken plug-in is listed with its error)."""
    used: dict[str, list[str]] = {}
    if config is not None:
        for name, integration in config.integrations.items():
            state = "" if integration.enabled else " (disabled)"
            used.setdefault(integration.provider, []).append(name + state)
    broken: dict[str, str] = {}
    infos = []
    for provider in registry.all(broken):
        defaults = provider.settings_defaults()
        settings = [
            SettingInfo(
                name=info.alias or name,
                type=_type_name(info.annotation),
                required=info.is_required(),
                default=None if info.is_required() else defaults[name],
                secret="SecretStr" in _type_name(info.annotation),
                description=info.description,
            )
            for name, info in provider.settings_model.model_fields.items()
        ]
        infos.append(
            ProviderInfo(
                provider.identifier,
                provider.display_name,
                provider.description,
                settings,
                used.get(provider.identifier, []),
            )
        )
    for name, error in broken.items():
        infos.append(ProviderInfo(name, name, "", error=error))
    return sorted(infos, key=lambda i: i.identifier)
