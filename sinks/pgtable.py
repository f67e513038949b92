"""The ``postgres`` provider: sync records into a table of a PostgreSQL database.

The target is one table of some database (a reporting database, another
service's schema) with a unique, non-null id column. The ``rowId`` of a row is
PostgreSQL's ``xmin`` system column as text: the id of the transaction that
wrote this version of the row. ``update``/``delete`` with ``expected_row_id``
only apply while ``xmin::text`` still matches, so a concurrent edit is a
``SinkConflictError`` rather than a lost update.

Caveats of ``xmin`` as a version: every UPDATE writes a new row version, so it
changes even when no value changed (a no-op ``UPDATE`` by anyone looks like an
edit to the poller); rows written by one transaction share one ``xmin``; it is
a 32-bit counter that wraps around, so after ~4 billion transactions an old
value can come back (an ABA false match, vanishingly rare between two reads of
one row); and a dump/restore or a logical copy of the table gives every row a
new ``xmin``, so the next poll sees all of them as changed.

Statements are built from ``psycopg.sql`` identifiers and ``%s`` placeholders
only (the ``*_sql`` functions, unit-tested without a server). The connection,
its lock, reconnects and the translation of failures (a lost connection is a
``SinkTransientError``, a refused statement a ``SinkPermanentError`` naming the
table and columns, never values or the DSN) are :class:`PostgresWriter`'s.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import quote

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from cdcsync.errors import ConfigurationError, MappingError, SinkConflictError, SinkPermanentError
from cdcsync.sinks.audit import Auditor, audit_record
from cdcsync.sinks.base import ExternalRecord, Sink, check_link_template, count_call
from cdcsync.sinks.postgres import Conn, PostgresWriter, adapt, checked_columns, json_friendly
from cdcsync.sinks.registry import Provider

__all__ = [
    "VERSION_ALIAS",
    "PgTableSettings",
    "PgTableSink",
    "audit_body",
    "delete_row_sql",
    "find_sql",
    "get_sql",
    "insert_row_sql",
    "page_sql",
    "provider",
    "update_row_sql",
    "version_sql",
]

logger = logging.getLogger(__name__)

#: The name the row version (``xmin::text``) is selected as; never a column of the record.
VERSION_ALIAS = "_cdcsync_xmin"
_Rows = list[dict[str, Any]]
_MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently truncates longer names


def _check_identifier(name: str) -> str:
    if not name or "\x00" in name:
        raise ValueError("must be a non-empty PostgreSQL name")
    if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        raise ValueError(f"is longer than PostgreSQL's {_MAX_IDENTIFIER_BYTES} bytes for a name")
    return name


#: A table, schema or column name (quoted in every statement, so any spelling is safe).
_Name = Annotated[str, AfterValidator(_check_identifier)]


class PgTableSettings(BaseModel):
    """Which table, keyed by which column; the connection string only as a secret."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    #: The libpq URL or key=value string, from the configuration's ``secrets: {dsn: ...}``.
    dsn: SecretStr | None = None
    #: Shorthand for an inline target: the environment variable holding the DSN.
    dsn_env: str | None = None
    schema_: _Name = Field(default="public", alias="schema")
    table: _Name
    #: A unique, non-null column (normally the primary key): the external id and page order.
    id_column: _Name = "id"
    object_type: str = Field(min_length=1)
    #: The columns the sync may write; unset: any column the payload names.
    columns: tuple[_Name, ...] | None = None
    #: May use {schema}, {table}, {object_type}, {id}; unset: postgresql://host:port/db/...
    link_template: str | None = None
    page_size: int = Field(default=500, ge=1, le=10_000)
    connect_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("columns")
    @classmethod
    def _distinct(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("lists a column twice")
        return value

    @field_validator("link_template")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        return check_link_template(value, "schema", "table", "object_type", "id")


# -- statements (pure) -------------------------------------------------------------------


def _target(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def _row() -> sql.Composed:
    """The select list of a record: every column and the row version."""
    return sql.SQL("*, xmin::text AS {}").format(sql.Identifier(VERSION_ALIAS))


def _by_id(id_column: str, *, check_version: bool) -> sql.Composed:
    where = sql.SQL("{} = %s").format(sql.Identifier(id_column))
    if check_version:
        return sql.SQL("{} AND xmin::text = %s").format(where)
    return where


def get_sql(schema: str, table: str, id_column: str) -> sql.Composed:
    """``SELECT *, xmin::text AS _cdcsync_xmin FROM … WHERE id = %s``."""
    return sql.SQL("SELECT {} FROM {} WHERE {}").format(
        _row(), _target(schema, table), _by_id(id_column, check_version=False)
    )


def version_sql(schema: str, table: str, id_column: str) -> sql.Composed:
    """``SELECT xmin::text AS _cdcsync_xmin FROM … WHERE id = %s``: does it exist, which version."""
    return sql.SQL("SELECT xmin::text AS {} FROM {} WHERE {}").format(
        sql.Identifier(VERSION_ALIAS),
        _target(schema, table),
        _by_id(id_column, check_version=False),
    )


def find_sql(
    schema: str, table: str, id_column: str, keys: Sequence[str], nulls: Collection[str] = ()
) -> sql.Composed:
    """Rows whose ``keys`` equal ``%s`` each (``IS NULL`` for ``nulls``), at most two."""
    if not keys:
        raise ValueError("find needs at least one key column")
    conditions = [
        sql.SQL("{} IS NULL" if key in nulls else "{} = %s").format(sql.Identifier(key))
        for key in keys
    ]
    return sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 2").format(
        _row(), _target(schema, table), sql.SQL(" AND ").join(conditions), sql.Identifier(id_column)
    )


def insert_row_sql(schema: str, table: str, columns: Sequence[str]) -> sql.Composed:
    """``INSERT … (cols) VALUES (%s, …) RETURNING *, xmin`` (``DEFAULT VALUES`` for none)."""
    if not columns:
        return sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING {}").format(
            _target(schema, table), _row()
        )
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        _target(schema, table),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(", ").join(sql.Placeholder() for _ in columns),
        _row(),
    )


def update_row_sql(
    schema: str, table: str, id_column: str, columns: Sequence[str], *, check_version: bool
) -> sql.Composed:
    """``UPDATE … SET c = %s, … WHERE id = %s [AND xmin::text = %s] RETURNING *, xmin``."""
    if not columns:
        raise ValueError("an UPDATE needs at least one column")
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns)
    return sql.SQL("UPDATE {} SET {} WHERE {} RETURNING {}").format(
        _target(schema, table), assignments, _by_id(id_column, check_version=check_version), _row()
    )


def delete_row_sql(schema: str, table: str, id_column: str, *, check_version: bool) -> sql.Composed:
    """``DELETE FROM … WHERE id = %s [AND xmin::text = %s]``."""
    return sql.SQL("DELETE FROM {} WHERE {}").format(
        _target(schema, table), _by_id(id_column, check_version=check_version)
    )


def page_sql(schema: str, table: str, id_column: str, *, after: bool) -> sql.Composed:
    """One page in id order: ``[WHERE id > %s] ORDER BY id LIMIT %s`` (keyset pagination)."""
    where = sql.SQL("WHERE {} > %s ").format(sql.Identifier(id_column)) if after else sql.SQL("")
    return sql.SQL("SELECT {} FROM {} {}ORDER BY {} LIMIT %s").format(
        _row(), _target(schema, table), where, sql.Identifier(id_column)
    )


def audit_body(values: Mapping[str, Any]) -> bytes:
    """The audited bytes of the values written: compact JSON, keys sorted."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"), default=str).encode()


# -- the sink ------------------------------------------------------------------------------


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
        dsn = _read_dsn(settings, os.environ if environ is None else environ)
        self._db = PostgresWriter(
            dsn,
            table=settings.table,
            schema=settings.schema_,
            key_column=settings.id_column,
            allowed_columns=settings.columns or (),
            connect_timeout=settings.connect_timeout_s,
        )
        self.recipient = _recipient(dsn)
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


def _read_dsn(settings: PgTableSettings, environ: Mapping[str, str]) -> str:
    where = f"{settings.object_type} sink (PostgreSQL {settings.schema_}.{settings.table})"
    if settings.dsn is not None:
        value = settings.dsn.get_secret_value().strip()
        if not value:
            raise ConfigurationError(f"{where}: the secret `dsn` is empty")
        return value
    if settings.dsn_env is None:
        raise ConfigurationError(
            f"{where}: no connection string; give the secret `dsn` "
            "(secrets: {dsn: {env: VARIABLE}}) or dsn_env: VARIABLE"
        )
    value = environ.get(settings.dsn_env, "").strip()
    if not value:
        raise ConfigurationError(
            f"{where}: the environment variable {settings.dsn_env} (named by dsn_env) "
            "is not set or empty; export the database URL in it"
        )
    return value


def _recipient(dsn: str) -> str:
    """``postgresql://host:port/db`` of a DSN: where the data goes, without credentials."""
    params = conninfo_to_dict(dsn)  # PostgresWriter has already refused an invalid one
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    if host.startswith("/"):  # a Unix socket directory
        host = "localhost"
    elif ":" in host and "," not in host:
        host = f"[{host}]"  # IPv6
    port = params.get("port") or 5432
    return f"postgresql://{host}:{port}/{params.get('dbname') or ''}"


provider = Provider(
    identifier="postgres",
    display_name="PostgreSQL table",
    description=(
        "Rows of one table of a PostgreSQL database (a reporting database, another "
        "service's schema), keyed by an id column, with xmin as the row version."
    ),
    settings_model=PgTableSettings,
    factory=lambda settings, context: PgTableSink(
        settings,
        environ=context.environ,
        auditor=context.auditor,
        integration=context.integration,
    ),
)
