"""Sink providers, found through the ``cdcsync.providers`` entry-point group.

A provider is one kind of external system (``rest``, ``postgres``); a
configuration of it (an *integration* in ``cdcsync.yaml``) gives its settings,
params and secrets. A third-party package adds a provider by declaring an
entry point whose object is a :class:`Provider`::

    [project.entry-points."cdcsync.providers"]
    acme = "acme_cdcsync:provider"

Entry points are loaded only when their provider is first used or listed, so
one that needs an optional package costs nothing until it is configured.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from cdcsync.errors import ConfigurationError
from cdcsync.sinks.base import Sink
from cdcsync.sinks.delivery.audit import Auditor

__all__ = [
    "ENTRY_POINT_GROUP",
    "Provider",
    "ProviderContext",
    "SinkRegistry",
    "build_sink",
    "default_registry",
    "describe_errors",
    "settings_model",
]

logger = logging.getLogger(__name__)

#: The entry-point group providers register under.
ENTRY_POINT_GROUP = "cdcsync.providers"


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What a provider's factory gets besides its settings: where it runs and for whom."""

    #: The configuration's name in ``integrations:`` (``None`` for an inline target).
    integration: str | None = None
    #: The configuration's non-secret parameters.
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Receives one record per outgoing call (``sinks.delivery.audit``); ``None``: no audit trail.
    auditor: Auditor | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


@dataclass(frozen=True, slots=True)
class Provider:
    """A sink provider: its identifier and description, its settings model, its factory.

    The factory builds the :class:`~cdcsync.sinks.base.Sink` the agents call:
    ``get``/``find`` (retrieve), ``create``/``update`` (create-or-update, with
    ``If-Match``-style versions), ``delete``, and ``list`` (list-changed: the
    poller diffs it by ``rowId``).
    """

    identifier: str
    display_name: str
    description: str
    settings_model: type[BaseModel]
    factory: Callable[[Any, ProviderContext], Sink]

    def settings_defaults(self) -> dict[str, Any]:
        """Each setting with its default (``...`` when it is required)."""
        return {
            name: (... if info.is_required() else info.get_default(call_default_factory=True))
            for name, info in self.settings_model.model_fields.items()
        }


class SinkRegistry:
    """Known providers by identifier: registered objects and not yet loaded entry points."""

    def __init__(
        self,
        providers: Mapping[str, Provider] | None = None,
        *,
        entry_points_group: str | None = None,
        plugins: Iterable[EntryPoint] = (),
    ) -> None:
        self._providers: dict[str, Provider] = dict(providers or {})
        self._entry_points: dict[str, EntryPoint] = {}
        found = entry_points(group=entry_points_group) if entry_points_group else ()
        for ep in [*found, *plugins]:
            self._entry_points.setdefault(ep.name, ep)

    def register(self, provider: Provider, *, replace: bool = False) -> None:
        """Add a provider under its identifier; refuses to shadow one unless ``replace``."""
        name = provider.identifier
        if name in self.names() and not replace:
            raise ValueError(f"sink provider {name!r} is already registered")
        self._providers[name] = provider

    def names(self) -> list[str]:
        """The known provider identifiers, sorted."""
        return sorted(set(self._providers) | set(self._entry_points))

    def provider(self, name: str) -> Provider:
        """The provider registered as ``name``; ``ConfigurationError`` if there is none."""
        if name in self._providers:
            return self._providers[name]
        ep = self._entry_points.get(name)
        if ep is None:
            known = ", ".join(repr(n) for n in self.names()) or "none"
            raise ConfigurationError(
                f"unknown provider {name!r}; known providers: {known} "
                "(`cdcsync providers list` describes them; a provider package must be "
                f"installed and declare an entry point in the {ENTRY_POINT_GROUP!r} group)"
            )
        self._providers[name] = provider = _load(ep)
        return provider

    def all(self, broken: dict[str, str] | None = None) -> list[Provider]:
        """Every provider, loading the entry points not loaded yet.

        With ``broken``, a provider that cannot be loaded is recorded there
        (identifier -> error) instead of failing the whole list.
        """
        providers = []
        for name in self.names():
            try:
                providers.append(self.provider(name))
            except ConfigurationError as exc:
                if broken is None:
                    raise
                broken[name] = str(exc)
        return providers

    def validate(self, name: str, settings: Mapping[str, Any] | BaseModel) -> BaseModel:
        """``settings`` checked against the provider's model; errors name fields, not values."""
        model = self.provider(name).settings_model
        if isinstance(settings, model):
            return settings
        if isinstance(settings, BaseModel):
            settings = settings.model_dump()
        if not isinstance(settings, Mapping):
            raise ConfigurationError(
                f"provider {name!r}: settings must be a mapping, not {type(settings).__name__}"
            )
        try:
            return model.model_validate(dict(settings))
        except ValidationError as exc:
            # pydantic's own message quotes input values, which may be secrets
            raise ConfigurationError(
                f"invalid settings for provider {name!r}: {describe_errors(exc)}"
            ) from None

    def build(
        self,
        name: str,
        settings: Mapping[str, Any] | BaseModel,
        context: ProviderContext | None = None,
    ) -> Sink:
        """Validate ``settings`` for provider ``name`` and construct its sink."""
        validated = self.validate(name, settings)
        sink = self.provider(name).factory(validated, context or ProviderContext())
        logger.debug("built %r from provider %r", sink, name)
        return sink


def _load(ep: EntryPoint) -> Provider:
    where = f"entry point {ep.name!r} ({ep.value}) of {ENTRY_POINT_GROUP!r}"
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plug-in must say which one it is
        raise ConfigurationError(f"provider {where} cannot be loaded: {exc}") from exc
    if not isinstance(obj, Provider):
        raise ConfigurationError(
            f"provider {where} is a {type(obj).__name__}, not a cdcsync.sinks.Provider"
        )
    if obj.identifier != ep.name:
        raise ConfigurationError(
            f"provider {where} calls itself {obj.identifier!r}; the names must match"
        )
    return obj


def describe_errors(exc: ValidationError) -> str:
    """Each problem as ``field: message``, without echoing the offending values."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
        for error in exc.errors()
    )


#: The built-in providers and every installed plug-in.
default_registry = SinkRegistry(entry_points_group=ENTRY_POINT_GROUP)


def build_sink(
    provider: str, settings: Mapping[str, Any] | BaseModel, context: ProviderContext | None = None
) -> Sink:
    """Build a sink from a provider identifier and its settings (from the config file)."""
    return default_registry.build(provider, settings, context)


def settings_model(provider: str) -> type[BaseModel]:
    """The pydantic model a provider's settings must satisfy, e.g. to validate a config early."""
    return default_registry.provider(provider).settings_model
