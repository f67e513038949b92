"""Declarative field maps: a source row to the external payload."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cdcsync.errors import MappingError

__all__ = ["FieldMap", "payload_hash"]

_JSON_SCALARS = (str, int, float, bool, type(None))


class FieldMap:
    """Maps ``external_field -> source_column``; only mapped columns reach the API."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        if not fields:
            raise MappingError("a field map needs at least one field")
        self.fields = dict(fields)

    @property
    def columns(self) -> frozenset[str]:
        """The source columns this map reads."""
        return frozenset(self.fields.values())

    def to_external(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Build the external payload from a source row, or raise MappingError saying why."""
        missing = sorted(c for c in self.fields.values() if c not in row)
        if missing:
            raise MappingError(
                f"row has no column(s) {missing} named in the mapping; it has {sorted(row)[:20]}"
            )
        payload: dict[str, Any] = {}
        for field, column in self.fields.items():
            value = row[column]
            if not isinstance(value, _JSON_SCALARS):
                raise MappingError(
                    f"column {column!r} holds a {type(value).__name__}, not a JSON scalar; "
                    "map it with a Python mapper"
                )
            payload[field] = value
        return payload

    def pick(self, payload: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
        """The subset of ``payload`` named by ``names`` (e.g. the natural key)."""
        return {name: payload.get(name) for name in names}


def payload_hash(payload: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a payload: equal payloads, equal hashes."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
