"""The reference API's records: in-memory collections with opaque version tokens.

Pure logic, no I/O, so the HTTP layer stays thin and the rules (ids, ``rowId``
on every write, stable paging, equality filters, ``If-Match``) are tested
directly. Like the CRMs it imitates, nothing carries a timestamp: the ``rowId``
is the only change signal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "InvalidCursorError",
    "NotFoundError",
    "Page",
    "PreconditionFailedError",
    "Store",
    "StoreError",
]

logger = logging.getLogger(__name__)

#: Keys the server owns; a client sending them in a body has them ignored.
READ_ONLY_FIELDS = frozenset({"id", "rowId"})


class StoreError(Exception):
    """A request the store refuses; the HTTP layer maps each subclass to a status."""


class NotFoundError(StoreError):
    """No record with that id in that collection (404)."""


class PreconditionFailedError(StoreError):
    """``If-Match`` named a ``rowId`` that is no longer current (412)."""

    def __init__(self, message: str, *, current_row_id: str) -> None:
        super().__init__(message)
        self.current_row_id = current_row_id


class InvalidCursorError(StoreError):
    """The paging cursor was not one this store issued (400)."""


@dataclass(slots=True)
class _Row:
    seq: int
    row_id: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``next`` is ``None`` on the last page."""

    items: list[dict[str, Any]]
    next: str | None


@dataclass(slots=True)
class Store:
    """Collections of records keyed by a server-assigned id, in creation order."""

    _collections: dict[str, dict[str, _Row]] = field(default_factory=dict)
    _seq: int = 0
    _writes: int = 0
    _salt: bytes = field(default_factory=lambda: secrets.token_bytes(8))

    # -- reads -------------------------------------------------------------

    def get(self, collection: str, record_id: str) -> dict[str, Any]:
        """The record as the API shows it; raises ``NotFoundError``."""
        return self._render(record_id, self._row(collection, record_id))

    def page(
        self,
        collection: str,
        *,
        limit: int,
        cursor: str | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> Page:
        """Records after ``cursor`` in creation order, keeping those equal to ``filters``.

        The cursor names the creation sequence of the last record returned, so
        records created or deleted between pages never shift the order.
        """
        after = _decode_cursor(cursor) if cursor else 0
        matches = _matcher(filters or {})
        items: list[dict[str, Any]] = []
        last_seq = 0
        more = False
        for record_id, row in self._collections.get(collection, {}).items():
            if row.seq <= after or not matches(row.fields):
                continue
            if len(items) == limit:
                more = True
                break
            items.append(self._render(record_id, row))
            last_seq = row.seq
        return Page(items=items, next=_encode_cursor(last_seq) if more else None)

    def matching(
        self, collection: str, filters: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Every record equal to ``filters``, in creation order (offset and page paging)."""
        matches = _matcher(filters or {})
        rows = self._collections.get(collection, {}).items()
        return [self._render(rid, row) for rid, row in rows if matches(row.fields)]

    def counts(self) -> dict[str, int]:
        """Number of records per collection, for the admin stats."""
        return {name: len(rows) for name, rows in self._collections.items()}

    # -- writes ------------------------------------------------------------

    def create(
        self, collection: str, fields: Mapping[str, Any], *, record_id: str | None = None
    ) -> dict[str, Any]:
        """Store a new record under a fresh short id (or the client's ``record_id``, which
        must be free) and return it."""
        rows = self._collections.setdefault(collection, {})
        if record_id is not None and record_id in rows:
            raise ValueError(f"{collection} record {record_id!r} exists already")
        while record_id is None or record_id in rows:
            record_id = uuid.uuid4().hex[:12]
        self._seq += 1
        rows[record_id] = _Row(seq=self._seq, row_id=self._next_row_id(), fields=_clean(fields))
        return self.get(collection, record_id)

    def replace(
        self,
        collection: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        if_match: str | None = None,
    ) -> dict[str, Any]:
        """Replace every field of a record (PUT); a new ``rowId`` even if nothing changed."""
        return self._write(collection, record_id, fields, if_match=if_match, merge=False)

    def merge(
        self,
        collection: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        if_match: str | None = None,
    ) -> dict[str, Any]:
        """Change the given fields and keep the others (PATCH); a new ``rowId``."""
        return self._write(collection, record_id, fields, if_match=if_match, merge=True)

    def _write(
        self,
        collection: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        if_match: str | None,
        merge: bool,
    ) -> dict[str, Any]:
        row = self._row(collection, record_id)
        _check_precondition(row, if_match)
        row.fields = {**row.fields, **_clean(fields)} if merge else _clean(fields)
        row.row_id = self._next_row_id()
        return self._render(record_id, row)

    def delete(self, collection: str, record_id: str, *, if_match: str | None = None) -> None:
        """Remove a record; raises ``NotFoundError`` if it is already gone."""
        row = self._row(collection, record_id)
        _check_precondition(row, if_match)
        del self._collections[collection][record_id]

    def clear(self) -> None:
        """Forget every record (ids and ``rowId``s are never reused)."""
        logger.debug("clearing %d collections", len(self._collections))
        self._collections.clear()

    # -- helpers -----------------------------------------------------------

    def _row(self, collection: str, record_id: str) -> _Row:
        try:
            return self._collections[collection][record_id]
        except KeyError:
            raise NotFoundError(f"no {collection} record with id {record_id!r}") from None

    def _next_row_id(self) -> str:
        self._writes += 1
        digest = hashlib.blake2b(self._writes.to_bytes(8, "big"), key=self._salt, digest_size=8)
        return digest.hexdigest()

    @staticmethod
    def _render(record_id: str, row: _Row) -> dict[str, Any]:
        return {"id": record_id, "rowId": row.row_id, **row.fields}


def _clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in READ_ONLY_FIELDS}


def _check_precondition(row: _Row, if_match: str | None) -> None:
    if if_match is None or if_match.strip() == "*":
        return
    tags = {_strip_etag(tag) for tag in if_match.split(",")}
    if row.row_id not in tags:
        raise PreconditionFailedError(
            f"rowId {if_match!r} is stale; the current rowId is {row.row_id!r}",
            current_row_id=row.row_id,
        )


def _strip_etag(tag: str) -> str:
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


def _matcher(wanted: Mapping[str, str]) -> Callable[[Mapping[str, Any]], bool]:
    """The test of a listing's filters, parsed once per request. Query values are strings:
    compare strings as is, other JSON values by their JSON text.

    ``name__in=a,b`` (django-filter's form) keeps the records whose ``name`` is one of them.
    """
    tests = [
        (name[:-4], frozenset(expected.split(","))) if name.endswith("__in")
        else (name, frozenset((expected,)))
        for name, expected in wanted.items()
    ]  # fmt: skip

    def matches(fields: Mapping[str, Any]) -> bool:
        for name, allowed in tests:
            if name not in fields:
                return False
            value = fields[name]
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            if text not in allowed:
                return False
        return True

    return matches


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("s"):
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursorError(f"cursor {cursor!r} was not issued by this server") from None
