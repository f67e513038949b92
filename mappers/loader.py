"""Turn an entity's ``mapping`` / ``mapper`` / ``mapper_options`` config into a Mapper.

A declarative ``mapping`` alone becomes a :class:`FieldMap`. A ``mapper`` is a
dotted import path (``"package.module:ClassName"``) of a class (or factory)
whose instances satisfy :class:`Mapper`; it is called with ``**options`` and,
when a ``mapping`` is given too, with ``mapping=<FieldMap>`` for it to wrap.
Every problem is a ConfigurationError saying where in the config and what to do.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cdcsync.errors import ConfigurationError
from cdcsync.mappers.base import Mapper
from cdcsync.mappers.fieldmap import FieldMap
from cdcsync.mappers.spec import MappingSpec, describe_errors

__all__ = ["build_mapper", "resolve"]

logger = logging.getLogger(__name__)


def build_mapper(
    mapping: Mapping[str, Any] | None,
    mapper: str | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    where: str = "",
) -> Mapper:
    """Build the entity's mapper; ``where`` prefixes error paths (e.g. ``entities.contact``)."""
    prefix = f"{where}." if where else ""
    field_map = _field_map(mapping, f"{prefix}mapping") if mapping is not None else None
    if mapper is None:
        if options:
            raise ConfigurationError(
                f"{prefix}mapper_options: given without a mapper; set `mapper` or remove them"
            )
        if field_map is None:
            raise ConfigurationError(
                f"{prefix}mapping: missing; give a `mapping` (external field: source column) "
                'or a `mapper` ("package.module:ClassName")'
            )
        return field_map
    return _python_mapper(mapper, field_map, options or {}, f"{prefix}mapper")


def resolve(path: str, *, where: str = "mapper") -> Any:
    """Import ``"package.module:Name"`` (or ``"package.module.Name"``) and return the object."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(
            f'{where}: {path!r} is not an import path; write it as "package.module:ClassName"'
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"{where}: cannot import module {module_name!r} of {path!r} ({exc}); "
            "check the spelling and that the package is installed"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(
                f"{where}: module {module_name!r} has no {attr!r}; check the name after ':'"
            ) from None
    return obj


def _field_map(mapping: Mapping[str, Any], where: str) -> FieldMap:
    if not isinstance(mapping, Mapping):
        raise ConfigurationError(
            f"{where}: must be a mapping of external field to source column, "
            f"not a {type(mapping).__name__}"
        )
    try:
        return FieldMap(MappingSpec.parse(mapping))
    except ValidationError as exc:
        raise ConfigurationError(
            f"invalid mapping ({exc.error_count()} errors):\n{describe_errors(exc, where)}"
        ) from None


def _python_mapper(
    path: str, field_map: FieldMap | None, options: Mapping[str, Any], where: str
) -> Mapper:
    factory = resolve(path, where=where)
    if not callable(factory):
        raise ConfigurationError(
            f"{where}: {path!r} is a {type(factory).__name__}, not a class; "
            "name a class implementing to_external/to_source (cdcsync.mappers.Mapper)"
        )
    if inspect.isclass(factory):
        lacking = [
            m for m in ("to_external", "to_source") if not callable(getattr(factory, m, None))
        ]
        if lacking:
            raise ConfigurationError(
                f"{where}: {path!r} is not a Mapper (no {', '.join(lacking)}); "
                "implement the cdcsync.mappers.Mapper protocol"
            )
    kwargs = dict(options)
    if "mapping" in kwargs:
        raise ConfigurationError(
            f"{where}_options: 'mapping' is not an option; put the map under the entity's `mapping`"
        )
    if field_map is not None:
        kwargs["mapping"] = field_map
    try:
        instance = factory(**kwargs)
    except TypeError as exc:
        raise ConfigurationError(
            f"{where}: {path!r} does not accept {sorted(kwargs)} ({exc}); "
            f"check mapper_options against {_signature(factory)}"
        ) from exc
    except (ConfigurationError, ValueError) as exc:
        raise ConfigurationError(f"{where}: {path!r} rejected its options: {exc}") from exc
    if not isinstance(instance, Mapper):
        raise ConfigurationError(
            f"{where}: {path!r} built a {type(instance).__name__}, which is not a Mapper; it "
            "needs columns, fields, pull_columns, to_external and to_source"
        )
    logger.debug("%s: built %r from %s", where, instance, path)
    return instance


def _signature(factory: Any) -> str:
    try:
        return f"{getattr(factory, '__name__', 'mapper')}{inspect.signature(factory)}"
    except (TypeError, ValueError):
        return repr(factory)
