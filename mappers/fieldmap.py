"""Declarative field maps: a source row to the external payload, and back.

:class:`FieldMap` is the :class:`~cdcsync.mappers.base.Mapper` a ``mapping``
in the configuration becomes. Each external field names its source column and,
optionally, a value map, a direction and a write mode (see
:mod:`cdcsync.mappers.spec`). Only mapped columns reach the API, and only
mapped columns come back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cdcsync.errors import MappingError
from cdcsync.mappers.base import is_empty, merge_lists, require_columns
from cdcsync.mappers.spec import FieldSpec, MappingSpec, Mode, Scalar, describe_errors

__all__ = ["FieldMap", "payload_hash"]

_JSON_SCALARS = (str, int, float, bool, type(None))
_SKIP = object()  # a write mode decided not to write this value


class FieldMap:
    """Maps ``external_field -> source column`` (or a :class:`FieldSpec`) in both directions.

    ``FieldMap({"firstName": "first_name"})`` is the plain form; a value may
    also be a ``FieldSpec`` or its dict form (``{"column": ..., "mode": ...}``),
    or the whole argument a validated :class:`MappingSpec`.
    """

    def __init__(
        self, fields: Mapping[str, str | FieldSpec | Mapping[str, Any]] | MappingSpec
    ) -> None:
        if isinstance(fields, MappingSpec):
            spec = fields
        else:
            if not fields:
                raise MappingError("a field map needs at least one field")
            try:
                spec = MappingSpec.parse(fields)
            except ValidationError as exc:
                raise MappingError(f"invalid field map:\n{describe_errors(exc)}") from None
        self.spec = spec
        #: external field -> its spec, in file order.
        self.specs: dict[str, FieldSpec] = dict(spec.fields)
        #: external field -> source column, for the fields pushed (all of them by default).
        self.fields: dict[str, str] = {f: s.column for f, s in self.specs.items() if s.pushed}
        self._pulled = {f: s for f, s in self.specs.items() if s.pulled}
        self._reverse = {f: s.reverse_map() for f, s in self._pulled.items()}

    def __repr__(self) -> str:
        return f"FieldMap({list(self.specs)})"

    @property
    def columns(self) -> frozenset[str]:
        """The source columns this map reads when pushing."""
        return frozenset(self.fields.values())

    @property
    def pull_columns(self) -> frozenset[str]:
        """The source columns this map writes when pulling."""
        return frozenset(s.column for s in self._pulled.values())

    def to_external(
        self, row: Mapping[str, Any], *, current: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Build the external payload from a source row, or raise MappingError saying why.

        ``current`` is the external object's fields (``None`` when creating); the
        write modes compare against it, and a field a mode declines is left out.
        """
        require_columns(row, self.columns)
        payload: dict[str, Any] = {}
        for field, column in self.fields.items():
            spec = self.specs[field]
            value = _check_json(row[column], column)
            value = _translate(
                value,
                spec.value_map,
                has_default=spec.has_push_default,
                default=spec.value_map_default,
                what=f"field {field!r}: value of column {column!r}",
                fix="add it to the value_map or set value_map_default",
            )
            value = _write_mode(spec.mode, value, current, field, f"field {field!r}")
            if value is not _SKIP:
                payload[field] = value
        return payload

    def to_source(
        self, fields: Mapping[str, Any], *, current: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """External fields -> source column values, for the pulled fields present in ``fields``.

        ``current`` is the source row (``None`` when inserting); the write modes
        compare against its columns. Fields absent from ``fields`` are skipped.
        """
        values: dict[str, Any] = {}
        for field, spec in self._pulled.items():
            if field not in fields:
                continue
            value = _translate(
                fields[field],
                self._reverse[field],
                has_default=spec.has_pull_default,
                default=spec.reverse_default,
                what=f"field {field!r}: external value",
                fix="add it to the value_map or set reverse_default",
            )
            value = _write_mode(spec.mode, value, current, spec.column, f"column {spec.column!r}")
            if value is not _SKIP:
                values[spec.column] = value
        return values

    def pick(self, payload: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
        """The subset of ``payload`` named by ``names`` (e.g. the natural key)."""
        return {name: payload.get(name) for name in names}


def _check_json(value: Any, column: str) -> Any:
    """A JSON scalar, or a list of them (Debezium sends arrays as lists)."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, _JSON_SCALARS) for v in value):
        return list(value)
    raise MappingError(
        f"column {column!r} holds a {type(value).__name__}, not a JSON scalar or a list "
        "of them; map it with a Python mapper"
    )


def _translate(
    value: Any,
    table: Mapping[Scalar, Scalar] | None,
    *,
    has_default: bool,
    default: Scalar,
    what: str,
    fix: str,
) -> Any:
    """Look ``value`` (or each item of a list) up in a value map; None passes unless mapped."""
    if table is None:
        return value
    if isinstance(value, list | tuple):
        return [_lookup(v, table, has_default, default, what, fix) for v in value]
    return _lookup(value, table, has_default, default, what, fix)


def _lookup(
    value: Any,
    table: Mapping[Scalar, Scalar],
    has_default: bool,
    default: Scalar,
    what: str,
    fix: str,
) -> Any:
    try:
        if value in table:
            return table[value]
    except TypeError:  # unhashable: a dict or list can never be in a value map
        pass
    if value is None:
        return None
    if has_default:
        return default
    known = ", ".join(repr(k) for k in list(table)[:10])
    raise MappingError(f"{what} {_short(value)} is not in its value_map (known: {known}); {fix}")


def _write_mode(
    mode: Mode, value: Any, current: Mapping[str, Any] | None, key: str, what: str
) -> Any:
    """The value to write under ``mode`` given the target's ``current`` state, or ``_SKIP``."""
    if mode == "overwrite":
        return value
    if mode == "if_new":
        return value if current is None else _SKIP
    existing = None if current is None else current.get(key)
    if mode == "if_empty":
        return value if is_empty(existing) else _SKIP
    # append: lists only; None is an empty list.
    if value is not None and not isinstance(value, list | tuple):
        raise MappingError(f"{what} has mode append but its value is a {type(value).__name__}")
    if existing is not None and not isinstance(existing, list | tuple):
        raise MappingError(
            f"{what} has mode append but its current value is a {type(existing).__name__}"
        )
    return merge_lists(existing, value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def payload_hash(payload: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a payload: equal payloads, equal hashes."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
