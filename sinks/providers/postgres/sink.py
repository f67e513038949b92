"""The ``postgres`` sink: the Sink contract as statements on one table, checked by ``xmin``."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from psycopg import sql

from cdcsync.errors import MappingError, SinkConflictError, SinkPermanentError
from cdcsync.sinks.base import ExternalRecord, Sink, count_call
from cdcsync.sinks.delivery.audit import Auditor, audit_record
from cdcsync.sinks.delivery.pgconnection import (
    Conn,
    PostgresConnection,
    adapt,
    checked_columns,
    json_friendly,
)
from cdcsync.sinks.providers.postgres.settings import PgTableSettings, read_dsn, recipient
from cdcsync.sinks.providers.postgres.statements import (
    VERSION_ALIAS,
    delete_row_sql,
    find_sql,
    get_sql,
    insert_row_sql,
    page_sql,
    update_row_sql,
    version_sql,
)

__all__ = ["PgTableSink", "audit_body"]

logger = logging.getLogger(__name__)

_Rows = list[dict[str, Any]]


def audit_body(values: Mapping[str, Any]) -> bytes:
    """The audited bytes of the values written: compact JSON, keys sorted."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"), default=str).encode()


class PgTableSink(Sink):
    """One table over one connection (shared by concurrent operations, serialised by a lock)."""

    def __init__(
        self,
        settings: PgTableSettings,
        *,
        environ: Mapping[str, str] | None = None,
        auditor: Auditor | None = None,
        integration: str | None = None,
    ) -> None:
        self.settings = settings
        self.object_type = settings.object_type
        self.name = f"{settings.schema_}.{settings.table}"
        dsn = read_dsn(settings, os.environ if environ is None else environ)
        self._db = PostgresConnection(
            dsn, name=self.name, connect_timeout=settings.connect_timeout_s
        )
        self.recipient = recipient(dsn)
        self._auditor = auditor
        self._integration = integration

    def __repr__(self) -> str:
        return f"PgTableSink({self.object_type!r}, {self.recipient}/{self.name})"

    # -- the Sink contract ---------------------------------------------------

    async def get(self, external_id: str) -> ExternalRecord | None:
        s, oid = self.settings, self._id(external_id)
        query = get_sql(s.schema_, s.table, s.id_column)
        rows = await self._db.run("get", (), lambda c: self._rows(c, "SELECT", query, [oid]))
        return self._record(rows[0]) if rows else None

    async def find(self, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        s = self.settings
        if not natural_key:
            raise SinkPermanentError(f"PostgreSQL {self.name}: cannot find() without a natural key")
        keys = list(natural_key)
        nulls = {k for k, v in natural_key.items() if v is None}
        query = find_sql(s.schema_, s.table, s.id_column, keys, nulls)
        params = [adapt(natural_key[k]) for k in keys if k not in nulls]
        rows = await self._db.run("find", keys, lambda c: self._rows(c, "SELECT", query, params))
        if len(rows) > 1:
            raise SinkPermanentError(
                f"PostgreSQL {self.name}: found several {s.object_type} rows: the natural key "
                f"{sorted(keys)} is not unique; deduplicate the rows, choose another key, or "
                "add a UNIQUE constraint on those columns"
            )
        return self._record(rows[0]) if rows else None

    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        s = self.settings
        allowed = None if s.columns is None else {*s.columns, s.id_column}
        columns = self._writable(payload, allowed, "create in")
        query = insert_row_sql(s.schema_, s.table, columns)
        params = [adapt(payload[c]) for c in columns]
        body = {c: payload[c] for c in columns}
        rows = await self._db.run(
            "create", columns, lambda c: self._rows(c, "INSERT", query, params, body),
            idempotent=False,
        )  # fmt: skip
        if not rows:  # RETURNING always yields the row; a rule or trigger could eat it
            raise SinkPermanentError(f"PostgreSQL {self.name}: the insert returned no row")
        return self._record(rows[0])

    async def update(
        self, external_id: str, payload: Mapping[str, Any], *, expected_row_id: str | None = None
    ) -> ExternalRecord:
        s, oid = self.settings, self._id(external_id)
        values = dict(payload)
        if s.id_column in values:  # the id is the WHERE, not a column to change
            if str(json_friendly(values.pop(s.id_column))) != oid:
                raise MappingError(
                    f"update of {self.name}: the payload changes {s.id_column!r}; ids are immutable"
                )
        columns = self._writable(values, None if s.columns is None else set(s.columns), "update")
        check = expected_row_id is not None
        if not columns:  # nothing to write: the row as it is, if the version still matches
            current = await self.get(oid)
            if current is None:
                raise self._gone(oid)
            if check and current.row_id != expected_row_id:
                raise self._conflict(oid, current.row_id, expected_row_id)
            return current
        query = update_row_sql(s.schema_, s.table, s.id_column, columns, check_version=check)
        params = [*(adapt(values[c]) for c in columns), oid, *([expected_row_id] if check else [])]
        body = {c: values[c] for c in columns}

        async def op(conn: Conn) -> dict[str, Any]:
            rows = await self._rows(conn, "UPDATE", query, params, body)
            if rows:
                return rows[0]
            current = await self._version(conn, oid) if check else None
            if current is None:
                raise self._gone(oid)
            raise self._conflict(oid, current, expected_row_id)

        # A conditional update is not retried on a fresh connection: if the first attempt
        # committed before the connection died, the retry would conflict with itself.
        return self._record(await self._db.run("update", columns, op, idempotent=not check))

    async def delete(self, external_id: str, *, expected_row_id: str | None = None) -> bool:
        s, oid = self.settings, self._id(external_id)
        check = expected_row_id is not None
        query = delete_row_sql(s.schema_, s.table, s.id_column, check_version=check)
        params = [oid, *([expected_row_id] if check else [])]

        async def op(conn: Conn) -> bool:
            count_call()
            await self._audit("DELETE", b"")
            cur = await conn.execute(query, params)
            if cur.rowcount > 0:
                return True
            current = await self._version(conn, oid) if check else None
            if current is not None:
                raise self._conflict(oid, current, expected_row_id)
            return False

        return await self._db.run("delete", (), op)

    async def list(self) -> AsyncIterator[ExternalRecord]:
        s = self.settings
        after: Any = None
        first = True
        while True:
            query = page_sql(s.schema_, s.table, s.id_column, after=not first)
            params = [s.page_size] if first else [after, s.page_size]
            rows = await self._page(query, params)
            if not rows:
                return
            last = rows[-1].get(s.id_column)  # the raw value: keeps the column's type
            for row in rows:
                yield self._record(row)
            if len(rows) < s.page_size or last is None:
                return
            after, first = last, False

    def link(self, external_id: str) -> str:
        s = self.settings
        if s.link_template is None:
            return f"{self.recipient}/{self.name}/{quote(str(external_id), safe='')}"
        return s.link_template.format(
            schema=s.schema_, table=s.table, object_type=s.object_type,
            id=quote(str(external_id), safe=""),
        )  # fmt: skip

    async def aclose(self) -> None:
        await self._db.aclose()

    # -- plumbing ------------------------------------------------------------------------

    async def _rows(
        self,
        conn: Conn,
        method: str,
        query: sql.Composed,
        params: Sequence[Any],
        body: Mapping[str, Any] | None = None,
    ) -> _Rows:
        """Run one statement, counted and audited as one call; its rows, raw."""
        count_call()
        await self._audit(method, b"" if body is None else audit_body(body))
        cur = await conn.execute(query, params)
        return [*await cur.fetchall()]

    async def _page(self, query: sql.Composed, params: Sequence[Any]) -> _Rows:
        return await self._db.run("list", (), lambda c: self._rows(c, "SELECT", query, params))

    async def _version(self, conn: Conn, oid: str) -> str | None:
        """The row's current ``xmin::text``; ``None`` when the row is gone."""
        s = self.settings
        rows = await self._rows(conn, "SELECT", version_sql(s.schema_, s.table, s.id_column), [oid])
        return str(rows[0][VERSION_ALIAS]) if rows else None

    async def _audit(self, method: str, body: bytes) -> None:
        if self._auditor is None:
            return
        await self._auditor.record(
            audit_record(
                integration=self._integration,
                provider="postgres",
                recipient=self.recipient,
                method=method,
                target=self.name,
                body=body,
            )
        )

    def _record(self, row: Mapping[str, Any]) -> ExternalRecord:
        id_column = self.settings.id_column
        if id_column not in row:
            raise SinkPermanentError(
                f"PostgreSQL {self.name}: the table has no column {id_column!r}; check id_column"
            )
        fields = {
            k: json_friendly(v) for k, v in row.items() if k not in (id_column, VERSION_ALIAS)
        }
        version = row.get(VERSION_ALIAS)
        return ExternalRecord(
            id=str(json_friendly(row[id_column])),
            row_id=None if version is None else str(version),
            fields=fields,
        )

    def _writable(
        self, values: Mapping[str, Any], allowed: Collection[str] | None, what: str
    ) -> Sequence[str]:
        if allowed is None:
            return list(values)
        return checked_columns(values, allowed, f"{what} {self.name}")

    def _id(self, external_id: str) -> str:
        oid = str(external_id)
        if not oid:
            raise SinkPermanentError(f"PostgreSQL {self.name}: needs a non-empty external id")
        return oid

    def _gone(self, oid: str) -> SinkPermanentError:
        s = self.settings
        return SinkPermanentError(
            f"PostgreSQL {self.name}: no {s.object_type} with {s.id_column} = {oid!r} "
            "(deleted externally?)",
            status_code=404,
        )

    def _conflict(self, oid: str, current: str | None, expected: str | None) -> SinkConflictError:
        s = self.settings
        return SinkConflictError(
            f"PostgreSQL {self.name}: {s.object_type} {s.id_column} = {oid!r} changed "
            f"concurrently (row version xmin {current}, expected {expected}); re-read it and "
            "decide again",
            status_code=412,
        )
