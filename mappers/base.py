"""The contract between the sync agent and a mapper, and helpers every mapper shares.

A mapper translates one entity both ways: ``to_external`` (push) turns a source
row into the external object's fields, ``to_source`` (pull) turns external
fields into source column values. The agent hashes ``to_external(row)`` (with
no ``current``) to tell a relevant change from an echo, so that call must be
deterministic: same row, same payload.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from cdcsync.errors import MappingError

__all__ = ["Mapper", "is_empty", "merge_lists", "require_columns"]


@runtime_checkable
class Mapper(Protocol):
    """What the agent calls to map one entity; declarative maps and Python mappers alike."""

    @property
    def columns(self) -> Collection[str]:
        """Source columns read by ``to_external`` (the push direction)."""
        ...

    @property
    def fields(self) -> Collection[str]:
        """External fields written by ``to_external`` (the push direction)."""
        ...

    @property
    def pull_columns(self) -> Collection[str]:
        """Source columns ``to_source`` may write: what the PostgreSQL writer must allow."""
        ...

    def to_external(
        self, row: Mapping[str, Any], *, current: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Source row -> external fields; ``current`` is the external object (None: creating)."""
        ...

    def to_source(
        self, fields: Mapping[str, Any], *, current: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """External fields -> source column values; ``current`` is the row (None: inserting)."""
        ...


def is_empty(value: Any) -> bool:
    """Empty for the ``if_empty`` mode: ``None``, ``""`` or an empty list."""
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


def merge_lists(current: Sequence[Any] | None, new: Sequence[Any] | None) -> list[Any]:
    """``current`` then the items of ``new`` it lacks: a union keeping order, no duplicates.

    Uses equality, not hashing, so lists of objects merge too.
    """
    merged: list[Any] = []
    for item in [*(current or ()), *(new or ())]:
        if item not in merged:
            merged.append(item)
    return merged


def require_columns(row: Mapping[str, Any], columns: Collection[str]) -> None:
    """Raise MappingError naming the ``columns`` missing from ``row`` (e.g. a partial image)."""
    missing = sorted(c for c in columns if c not in row)
    if missing:
        raise MappingError(
            f"row has no column(s) {missing} named in the mapping; it has {sorted(row)[:20]}"
        )
