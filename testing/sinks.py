"""In-memory sides for tests and dry runs: a versioned external API and a source table.

They behave like the real ones where the sync depends on it: every write
gets a new version, stale ``expected_row_id`` writes conflict, and every
write to the source table emits a change, as Debezium would.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from cdcsync.errors import SinkConflictError, SinkPermanentError
from cdcsync.sinks.base import ExternalRecord, Sink, count_call

__all__ = ["MemorySink", "MemoryWriter"]


class MemorySink(Sink):
    """An external system in a dict, with a ``rowId`` that changes on every write."""

    object_type = "object"

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, str] = {}
        self.writes = 0
        self.fail_next: list[Exception] = []
        self._ids = itertools.count(1)
        self._versions = itertools.count(1)

    def _call(self) -> None:
        count_call()
        if self.fail_next:
            raise self.fail_next.pop(0)

    def _record(self, oid: str) -> ExternalRecord:
        return ExternalRecord(oid, self.versions[oid], dict(self.objects[oid]))

    def _check(self, oid: str, expected: str | None) -> None:
        if oid not in self.objects:
            raise SinkPermanentError(f"{oid} not found", status_code=404)
        if expected is not None and expected != self.versions[oid]:
            raise SinkConflictError(f"{oid} changed concurrently", status_code=412)

    def edit(self, oid: str, fields: Mapping[str, Any]) -> None:
        """An edit made by someone else in the external system."""
        self.objects[oid] = {**self.objects[oid], **fields}
        self.versions[oid] = f"v{next(self._versions)}"

    async def get(self, external_id: str) -> ExternalRecord | None:
        self._call()
        return self._record(external_id) if external_id in self.objects else None

    async def find(self, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        self._call()
        for oid, fields in self.objects.items():
            if all(fields.get(k) == v for k, v in natural_key.items()):
                return self._record(oid)
        return None

    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        self._call()
        oid = f"x{next(self._ids)}"
        self.objects[oid] = dict(payload)
        self.versions[oid] = f"v{next(self._versions)}"
        self.writes += 1
        return self._record(oid)

    async def update(
        self, external_id: str, payload: Mapping[str, Any], *, expected_row_id: str | None = None
    ) -> ExternalRecord:
        self._call()
        self._check(external_id, expected_row_id)
        self.objects[external_id] = dict(payload)
        self.versions[external_id] = f"v{next(self._versions)}"
        self.writes += 1
        return self._record(external_id)

    async def delete(self, external_id: str, *, expected_row_id: str | None = None) -> bool:
        self._call()
        if external_id not in self.objects:
            return False
        self._check(external_id, expected_row_id)
        del self.objects[external_id], self.versions[external_id]
        self.writes += 1
        return True

    async def list(self) -> AsyncIterator[ExternalRecord]:
        for oid in list(self.objects):
            count_call()
            yield self._record(oid)

    def link(self, external_id: str) -> str:
        return f"memory://{self.object_type}/{external_id}"


Change = Callable[[str, str, dict[str, Any] | None, dict[str, Any] | None], None]


class MemoryWriter:
    """A source table in a dict; ``on_change(op, id, before, after)`` plays Debezium."""

    def __init__(self, on_change: Change, *, key_column: str = "id") -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        #: The pull ledger: each row as the last ``pull`` left it.
        self.pulled: dict[str, dict[str, Any]] = {}
        self.on_change = on_change
        self.key_column = key_column
        self.writes = 0
        self._ids = itertools.count(1000)

    def edit(self, entity_id: str, values: Mapping[str, Any]) -> None:
        """An edit made by a user of the source application."""
        before = self.rows.get(entity_id)
        after = {**(before or {self.key_column: int(entity_id)}), **values}
        self.rows[entity_id] = after
        self.on_change("u" if before else "c", entity_id, before, after)

    async def fetch(self, entity_id: str) -> dict[str, Any] | None:
        row = self.rows.get(entity_id)
        return dict(row) if row else None

    async def update(self, entity_id: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
        before = self.rows.get(entity_id)
        if before is None:
            return None
        after = {**before, **values}
        self.rows[entity_id] = after
        self.writes += 1
        self.on_change("u", entity_id, before, after)
        return dict(after)

    async def pull(self, entity_id: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
        after = await self.update(entity_id, values)
        if after is not None:
            self.pulled[entity_id] = dict(after)
        return after

    async def holds_pull(self, entity_id: str) -> bool:
        row = self.rows.get(entity_id)
        return row is not None and self.pulled.get(entity_id) == row

    async def insert(self, values: Mapping[str, Any]) -> dict[str, Any]:
        entity_id = str(next(self._ids))
        row = {self.key_column: int(entity_id), **values}
        self.rows[entity_id] = row
        self.writes += 1
        self.on_change("c", entity_id, None, row)
        return dict(row)

    async def delete(self, entity_id: str) -> bool:
        before = self.rows.pop(entity_id, None)
        if before is None:
            return False
        self.writes += 1
        self.on_change("d", entity_id, before, None)
        return True

    async def write_status(self, entity_id: str, values: Mapping[str, Any]) -> None:
        if entity_id in self.rows:
            held = self.pulled.get(entity_id) == self.rows[entity_id]
            self.edit(entity_id, values)
            if held:  # like the ledger's check, which ignores the status columns
                self.pulled[entity_id] = dict(self.rows[entity_id])
