"""Provider identifiers → (settings model, factory): how a config's ``target`` becomes a sink.

The configuration names a provider (``"rest"``) and gives its settings as
plain data; :func:`build_sink` validates them against the provider's pydantic
model and constructs the sink. Providers are imported only when first used,
so one that needs an optional package costs nothing until it is configured.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from cdcsync.errors import ConfigurationError
from cdcsync.sinks.base import Sink

__all__ = ["Provider", "SinkRegistry", "build_sink", "default_registry", "settings_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Provider:
    """A sink provider: the model its settings must satisfy, and how to build the sink."""

    settings_model: type[BaseModel]
    factory: Callable[[Any], Sink]


class SinkRegistry:
    """Known providers by identifier; entries are a :class:`Provider` or a lazy import path.

    A lazy entry is ``"package.module:SettingsClass:SinkClass"``, imported on first use.
    """

    def __init__(self, entries: Mapping[str, Provider | str] | None = None) -> None:
        self._entries: dict[str, Provider | str] = dict(entries or {})

    def register(self, name: str, provider: Provider | str, *, replace: bool = False) -> None:
        """Add a provider under ``name``; refuses to shadow one unless ``replace``."""
        if name in self._entries and not replace:
            raise ValueError(f"sink provider {name!r} is already registered")
        self._entries[name] = provider

    def names(self) -> list[str]:
        """The known provider identifiers, sorted."""
        return sorted(self._entries)

    def provider(self, name: str) -> Provider:
        """The provider registered as ``name``; ``ConfigurationError`` if there is none."""
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(repr(n) for n in self.names()) or "none"
            raise ConfigurationError(f"unknown sink provider {name!r}; known providers: {known}")
        if isinstance(entry, str):
            entry = self._entries[name] = _load(name, entry)
        return entry

    def build(self, name: str, settings: Mapping[str, Any] | BaseModel) -> Sink:
        """Validate ``settings`` for provider ``name`` and construct its sink."""
        provider = self.provider(name)
        model = provider.settings_model
        if isinstance(settings, model):
            validated = settings
        else:
            if isinstance(settings, BaseModel):
                settings = settings.model_dump()
            if not isinstance(settings, Mapping):
                raise ConfigurationError(
                    f"sink provider {name!r}: settings must be a mapping, "
                    f"not {type(settings).__name__}"
                )
            try:
                validated = model.model_validate(dict(settings))
            except ValidationError as exc:
                raise ConfigurationError(
                    f"invalid settings for sink provider {name!r}: {_describe(exc)}"
                ) from None  # the pydantic error quotes input values, which may be secrets
        sink = provider.factory(validated)
        logger.debug("built %r from provider %r", sink, name)
        return sink


def _load(name: str, path: str) -> Provider:
    module_name, _, rest = path.partition(":")
    settings_name, _, factory_name = rest.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"sink provider {name!r} is not available: {exc}") from exc
    return Provider(getattr(module, settings_name), getattr(module, factory_name))


def _describe(exc: ValidationError) -> str:
    """Each problem as ``field: message``, without echoing the offending values."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
        for error in exc.errors()
    )


default_registry = SinkRegistry({"rest": "cdcsync.sinks.rest:RestSettings:RestSink"})


def build_sink(provider: str, settings: Mapping[str, Any] | BaseModel) -> Sink:
    """Build a sink from a provider identifier and its settings (from the config file)."""
    return default_registry.build(provider, settings)


def settings_model(provider: str) -> type[BaseModel]:
    """The pydantic model a provider's settings must satisfy, e.g. to validate a config early."""
    return default_registry.provider(provider).settings_model
