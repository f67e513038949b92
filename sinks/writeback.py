"""The PostgreSQL write-back: the pull direction writes external changes into the source table.

:class:`PostgresWriter` reads, updates, inserts and deletes rows of one table
by key, and writes the optional sync-status columns. Statements are built from
``psycopg.sql`` identifiers and ``%s`` placeholders only (see the ``*_sql``
functions, unit-tested without a server); only configured columns are ever
written. The connection, its reconnects and the translation of failures are
:class:`~cdcsync.sinks.delivery.pgconnection.PostgresConnection`'s, which the
writer extends.

Rows come back as dicts shaped like Debezium's ``after`` image for text, integer,
boolean and array columns (str, int, bool, list). With this project's connector
(``decimal.handling.mode=string``) numerics are strings, and so they are here
(``Decimal`` -> plain string, e.g. ``"12.50"``); ``uuid`` becomes its string.
Temporal values are *left as Python types* (``datetime``, ``date``, ``time``,
``timedelta``), as are ``json``/``jsonb`` (dict/list) and ``bytea`` (bytes):
Debezium encodes those per column type and precision (ISO strings for
``timestamptz``, epoch micros for ``timestamp``, epoch days for ``date``, JSON
text for ``json``), which a caller comparing with an event must convert by
column type. Dict values written to a column are sent as ``jsonb``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from psycopg import sql

from cdcsync.errors import ConfigurationError, SinkPermanentError
from cdcsync.sinks.base import WRITTEN_MS
from cdcsync.sinks.delivery.pgconnection import (
    Conn,
    PostgresConnection,
    adapt,
    checked_columns,
    json_friendly,
)

__all__ = [
    "PostgresWriter",
    "columns_sql",
    "delete_sql",
    "holds_pull_sql",
    "insert_sql",
    "keys_sql",
    "ledger_ddl",
    "pull_sql",
    "select_sql",
    "update_sql",
]

#: The pull ledger: per row, the row exactly as cdcsync's last pull left it. Written in
#: the pull's own statement, so it survives a crash that loses the pull's state write.
LEDGER_TABLE = "cdcsync_pull_ledger"

logger = logging.getLogger(__name__)


# -- statements (pure) -------------------------------------------------------------------


def _table(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def select_sql(schema: str, table: str, key: str) -> sql.Composed:
    """``SELECT * FROM schema.table WHERE key = %s``."""
    return sql.SQL("SELECT * FROM {} WHERE {} = %s").format(
        _table(schema, table), sql.Identifier(key)
    )


def keys_sql(schema: str, table: str, key: str, column: str) -> sql.Composed:
    """``SELECT key FROM schema.table WHERE column = %s ORDER BY key``."""
    return sql.SQL("SELECT {key} FROM {} WHERE {} = %s ORDER BY {key}").format(
        _table(schema, table), sql.Identifier(column), key=sql.Identifier(key)
    )


def _assignments(columns: Sequence[str]) -> sql.Composed:
    if not columns:
        raise ValueError("an UPDATE needs at least one column")
    return sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns)


def _written_ms() -> sql.Composed:
    """The database's clock once the row is locked and written, as ``WRITTEN_MS``."""
    return sql.SQL("(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS {}").format(
        sql.Identifier(WRITTEN_MS)
    )


def update_sql(schema: str, table: str, key: str, columns: Sequence[str]) -> sql.Composed:
    """``UPDATE … SET col = %s, … WHERE key = %s RETURNING *`` and the database's clock
    once the row is locked and written (``WRITTEN_MS``); values follow ``columns``."""
    return sql.SQL("UPDATE {} SET {} WHERE {} = %s RETURNING *, {}").format(
        _table(schema, table), _assignments(columns), sql.Identifier(key), _written_ms()
    )


def pull_sql(schema: str, table: str, key: str, columns: Sequence[str]) -> sql.Composed:
    """``update_sql`` that also records the row as written in the pull ledger, atomically.

    Parameters: the column values, the key, then the ledger's table name.
    """
    return sql.SQL(
        "WITH w AS (UPDATE {t} SET {a} WHERE {k} = %s RETURNING *), "
        "l AS (INSERT INTO {ledger} (source_table, row_key, pulled) "
        "SELECT %s, w.{k}::text, to_jsonb(w) FROM w "
        "ON CONFLICT (source_table, row_key) "
        "DO UPDATE SET pulled = EXCLUDED.pulled, pulled_at = now()) "
        "SELECT w.*, {ms} FROM w"
    ).format(
        t=_table(schema, table),
        a=_assignments(columns),
        k=sql.Identifier(key),
        ledger=_table(schema, LEDGER_TABLE),
        ms=_written_ms(),
    )


def holds_pull_sql(schema: str, table: str, key: str) -> sql.Composed:
    """Whether the row is as the last pull left it, ignoring the given columns.

    Parameters: the columns to ignore (text[], twice), the ledger's table name, the key.
    No row (no ledger entry, or the row is gone) means no.
    """
    return sql.SQL(
        "SELECT (to_jsonb(t) - %s::text[]) = (l.pulled - %s::text[]) AS held "
        "FROM {t} AS t JOIN {ledger} AS l "
        "ON l.source_table = %s AND l.row_key = t.{k}::text WHERE t.{k} = %s"
    ).format(t=_table(schema, table), ledger=_table(schema, LEDGER_TABLE), k=sql.Identifier(key))


def ledger_ddl(schema: str) -> sql.Composed:
    """The pull ledger's table, created on the first pull when it is missing."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (source_table text NOT NULL, row_key text NOT NULL, "
        "pulled jsonb NOT NULL, pulled_at timestamptz NOT NULL DEFAULT now(), "
        "PRIMARY KEY (source_table, row_key))"
    ).format(_table(schema, LEDGER_TABLE))


def insert_sql(schema: str, table: str, columns: Sequence[str]) -> sql.Composed:
    """``INSERT INTO … (cols) VALUES (%s, …) RETURNING *`` (``DEFAULT VALUES`` for none)."""
    if not columns:
        return sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING *").format(_table(schema, table))
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
        _table(schema, table),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(", ").join(sql.Placeholder() for _ in columns),
    )


def delete_sql(schema: str, table: str, key: str) -> sql.Composed:
    """``DELETE FROM … WHERE key = %s``."""
    return sql.SQL("DELETE FROM {} WHERE {} = %s").format(
        _table(schema, table), sql.Identifier(key)
    )


def columns_sql() -> sql.SQL:
    """The table's columns from ``information_schema``; parameters: schema, table."""
    return sql.SQL(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position"
    )


# -- the writer --------------------------------------------------------------------------


class PostgresWriter(PostgresConnection):
    """Writes one table by key over one async connection, shared by concurrent callers.

    The connection (its lock, reconnects and error translation) is the
    :class:`PostgresConnection` it extends; only configured columns are written.
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str,
        schema: str = "public",
        key_column: str = "id",
        allowed_columns: Collection[str],
        status_columns: Collection[str] = (),
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__(dsn, name=f"{schema}.{table}", connect_timeout=connect_timeout)
        self.table = table
        self.schema = schema
        self.key_column = key_column
        self.allowed_columns = frozenset(allowed_columns)
        self.status_columns = frozenset(status_columns)
        #: Whether the pull ledger is usable: None until the first pull tries to create it.
        self.ledger: bool | None = None

    # -- operations ----------------------------------------------------------------------

    async def fetch(self, entity_id: str | int) -> dict[str, Any] | None:
        """The current row, or ``None`` if there is none."""
        query = select_sql(self.schema, self.table, self.key_column)
        return await self.run("fetch", (), lambda c: self._one(c, query, [entity_id]))

    async def keys_where(self, column: str, value: Any) -> list[str]:
        """Keys of the rows whose ``column`` equals ``value`` (a parent's children), as text."""
        query = keys_sql(self.schema, self.table, self.key_column, column)

        async def op(conn: Conn) -> list[str]:
            cur = await conn.execute(query, [value])
            return [str(next(iter(row.values()))) for row in await cur.fetchall()]

        return await self.run("keys_where", (column,), op)

    async def update(
        self, entity_id: str | int, values: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Write ``values`` (allowed columns only) and return the row after the write.

        ``None`` if the row is gone; with no values, the current row is returned.
        """
        columns = checked_columns(values, self.allowed_columns, f"update of {self.name}")
        if not columns:
            return await self.fetch(entity_id)
        query = update_sql(self.schema, self.table, self.key_column, columns)
        params = [*(adapt(values[c]) for c in columns), entity_id]
        return await self.run("update", columns, lambda c: self._one(c, query, params))

    async def pull(self, entity_id: str | int, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """``update`` for a pull: the row as written is also kept in the pull ledger.

        Without the ledger (no privilege to create it) this is a plain ``update``.
        """
        columns = checked_columns(values, self.allowed_columns, f"pull into {self.name}")
        if not columns or not await self._ensure_ledger():
            return await self.update(entity_id, values)
        query = pull_sql(self.schema, self.table, self.key_column, columns)
        params = [*(adapt(values[c]) for c in columns), entity_id, self.name]
        return await self.run("pull", columns, lambda c: self._one(c, query, params))

    async def holds_pull(self, entity_id: str | int) -> bool:
        """Whether the row is exactly as cdcsync's last pull left it (status columns aside).

        A pull whose state write was lost in a crash left the row changed; this tells
        that change from a user's edit. ``False`` when unknown (no ledger, no entry).
        Asked first by the restarted worker, which has pulled nothing yet itself.
        """
        if not await self._ensure_ledger():
            return False
        ignore = sorted(self.status_columns)
        query = holds_pull_sql(self.schema, self.table, self.key_column)
        row = await self.run(
            "holds_pull", (), lambda c: self._one(c, query, [ignore, ignore, self.name, entity_id])
        )
        return bool(row and row["held"])

    async def _ensure_ledger(self) -> bool:
        if self.ledger is None:
            ddl = ledger_ddl(self.schema)
            try:
                try:
                    await self.run("create pull ledger", (), lambda c: c.execute(ddl))
                except SinkPermanentError:
                    # Two workers creating it at once: one loses the race on the catalog.
                    await self.run("create pull ledger", (), lambda c: c.execute(ddl))
            except SinkPermanentError as exc:
                self.ledger = False
                logger.warning(
                    "%s: pull ledger %s.%s not available (%s); a pull interrupted by a crash "
                    "may then count as a conflict. Create it with: %s",
                    self.name, self.schema, LEDGER_TABLE, exc,
                    ddl.as_string(None),
                )  # fmt: skip
            else:
                self.ledger = await self.run("check pull ledger", (), self._may_write_ledger)
                if not self.ledger:
                    logger.warning(
                        "%s: no privilege to write the pull ledger %s.%s; a pull interrupted "
                        "by a crash may then count as a conflict. Grant SELECT, INSERT, "
                        "UPDATE on it to this user.", self.name, self.schema, LEDGER_TABLE,
                    )  # fmt: skip
        return self.ledger

    async def _may_write_ledger(self, conn: Conn) -> bool:
        name = _table(self.schema, LEDGER_TABLE).as_string(conn)
        # One privilege per call: a list is true when *any* of them is held.
        cur = await conn.execute(
            "SELECT has_table_privilege(%s, 'SELECT') AND has_table_privilege(%s, 'INSERT') "
            "AND has_table_privilege(%s, 'UPDATE') AS ok",
            [name, name, name],
        )
        row = await cur.fetchone()
        return bool(row and row["ok"])

    async def insert(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a row of ``values`` (allowed columns only) and return it as stored."""
        columns = checked_columns(values, self.allowed_columns, f"insert into {self.name}")
        query = insert_sql(self.schema, self.table, columns)
        params = [adapt(values[c]) for c in columns]
        row = await self.run(
            "insert", columns, lambda c: self._one(c, query, params), idempotent=False
        )
        if row is None:  # RETURNING * always yields the row; a rule or trigger could eat it
            raise SinkPermanentError(f"PostgreSQL {self.name}: insert returned no row")
        return row

    async def delete(self, entity_id: str | int) -> bool:
        """Delete the row; ``False`` if it was already gone."""
        query = delete_sql(self.schema, self.table, self.key_column)
        count = await self.run("delete", (), lambda c: self._count(c, query, [entity_id]))
        return count > 0

    async def write_status(self, entity_id: str | int, values: Mapping[str, Any]) -> None:
        """Write the sync-status columns (external id, link, status, …); a gone row is fine.

        These columns must not be mapped: their change comes back through
        Debezium as an update touching no mapped column, which the agent skips.
        """
        columns = checked_columns(values, self.status_columns, f"status of {self.name}")
        if not columns:
            return
        query = update_sql(self.schema, self.table, self.key_column, columns)
        params = [*(adapt(values[c]) for c in columns), entity_id]
        row = await self.run("write_status", columns, lambda c: self._one(c, query, params))
        if row is None:
            logger.debug("%s %s: row gone, sync status not written", self.name, entity_id)

    async def columns(self) -> set[str]:
        """The table's real columns (empty if the table does not exist)."""
        params = [self.schema, self.table]

        async def query(conn: Conn) -> set[str]:
            cur = await conn.execute(columns_sql(), params)
            return {row["column_name"] for row in await cur.fetchall()}

        return await self.run("columns", (), query)

    async def verify(self) -> None:
        """ConfigurationError naming every configured column the table lacks (start-up check)."""
        real = await self.columns()
        if not real:
            raise ConfigurationError(
                f"PostgreSQL {self.name}: no such table (or no privilege to see it)"
            )
        wanted = {self.key_column} | self.allowed_columns | self.status_columns
        missing = sorted(wanted - real)
        if missing:
            raise ConfigurationError(
                f"PostgreSQL {self.name}: configured column(s) {missing} do not exist; "
                f"the table has {sorted(real)}"
            )

    # -- plumbing ------------------------------------------------------------------------

    @staticmethod
    async def _one(conn: Conn, query: sql.Composed, params: Sequence[Any]) -> dict[str, Any] | None:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
        return None if row is None else {k: json_friendly(v) for k, v in row.items()}

    @staticmethod
    async def _count(conn: Conn, query: sql.Composed, params: Sequence[Any]) -> int:
        cur = await conn.execute(query, params)
        return int(cur.rowcount)
