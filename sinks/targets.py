"""An entity's resolved target → its sink: settings, secrets and context put together.

:func:`check_target` validates a target without reading its secrets (operator
commands and start-up checks); :func:`build_target` reads the secrets and
builds the sink the agent calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel, SecretStr

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import ResolvedTarget
from cdcsync.sinks.base import Sink
from cdcsync.sinks.delivery.audit import Auditor
from cdcsync.sinks.delivery.bulk import BatchingSink
from cdcsync.sinks.registry import ProviderContext, SinkRegistry, default_registry
from cdcsync.sinks.secrets import resolve_secrets

__all__ = ["build_target", "check_target"]

_PLACEHOLDER = SecretStr("<not read: checked at start-up>")


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(arg) for arg in get_args(annotation))


def _secret_fields(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if _is_secret(info.annotation)}


def check_target(
    target: ResolvedTarget, *, where: str, registry: SinkRegistry = default_registry
) -> BaseModel:
    """The target's settings validated by its provider, secrets stood in for by placeholders."""
    try:
        provider = registry.provider(target.provider)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}.provider: {exc}") from None
    secret_fields = _secret_fields(provider.settings_model)
    for name in target.secrets:
        if name not in secret_fields:
            hint = ", ".join(sorted(secret_fields)) or "none"
            raise ConfigurationError(
                f"{where}.secrets.{name}: provider {target.provider!r} has no secret setting "
                f"{name!r} (its secret settings: {hint})"
            )
    if written := sorted(set(target.settings) & secret_fields):
        name = written[0]
        raise ConfigurationError(
            f"{where}.settings.{name}: a secret must not be written in the file; "
            f"give it under `secrets: {{{name}: {{env: VARIABLE}}}}` instead"
        )
    placeholders = dict.fromkeys(target.secrets, _PLACEHOLDER)
    try:
        return registry.validate(target.provider, {**target.settings, **placeholders})
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}.settings: {exc}") from None


def build_target(
    target: ResolvedTarget,
    *,
    where: str,
    auditor: Auditor | None = None,
    environ: Mapping[str, str] | None = None,
    registry: SinkRegistry = default_registry,
) -> Sink:
    """Read the target's secrets and build its sink; every problem names ``where``.

    A sink with a bulk or find_many form comes wrapped in
    :class:`~cdcsync.sinks.delivery.bulk.BatchingSink`.
    """
    check_target(target, where=where, registry=registry)
    secrets = resolve_secrets(target.secrets, where=f"{where}.secrets", environ=environ)
    context = ProviderContext(
        integration=target.integration,
        params=target.params,
        auditor=auditor,
        **({} if environ is None else {"environ": environ}),
    )
    try:
        sink = registry.build(target.provider, {**target.settings, **secrets}, context)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    # The writes, or the lookups, of concurrent changes are sent together where it can.
    return BatchingSink(sink) if sink.bulk_max > 0 or sink.find_many_max > 0 else sink
