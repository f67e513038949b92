"""The PostgreSQL writer without a server: statements, column checks, values, errors, reconnects."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from cdcsync.errors import (
    ConfigurationError,
    MappingError,
    SinkPermanentError,
    SinkTransientError,
)
from cdcsync.sinks.delivery.pgconnection import adapt, checked_columns, json_friendly
from cdcsync.sinks.writeback import (
    PostgresWriter,
    columns_sql,
    delete_sql,
    holds_pull_sql,
    insert_sql,
    ledger_ddl,
    pull_sql,
    select_sql,
    update_sql,
)

DSN = "host=127.0.0.1 port=1 dbname=x user=u password=s3cr3t-pw"


def writer(**kwargs: Any) -> PostgresWriter:
    options: dict[str, Any] = {"table": "contact", "allowed_columns": ["email", "first_name"]}
    return PostgresWriter(DSN, **(options | kwargs))


# -- statements ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (select_sql("public", "contact", "id"), 'SELECT * FROM "public"."contact" WHERE "id" = %s'),
        (
            update_sql("public", "contact", "id", ["email", "first_name"]),
            'UPDATE "public"."contact" SET "email" = %s, "first_name" = %s '
            'WHERE "id" = %s RETURNING *, '
            '(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS "__cdcsync_written_ms"',
        ),
        (
            insert_sql("s", "t", ["a", "b"]),
            'INSERT INTO "s"."t" ("a", "b") VALUES (%s, %s) RETURNING *',
        ),
        (insert_sql("s", "t", []), 'INSERT INTO "s"."t" DEFAULT VALUES RETURNING *'),
        (delete_sql("s", "t", "key"), 'DELETE FROM "s"."t" WHERE "key" = %s'),
        (
            update_sql("s", 'we"ird', "id", ['x"; DROP TABLE t; --']),
            'UPDATE "s"."we""ird" SET "x""; DROP TABLE t; --" = %s WHERE "id" = %s RETURNING *, '
            '(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS "__cdcsync_written_ms"',
        ),
    ],
)
def test_statements(query: psycopg.sql.Composable, expected: str) -> None:
    assert query.as_string() == expected


def test_a_pull_and_its_ledger_entry_are_one_statement() -> None:
    """One statement, so a crash cannot keep the row's write and lose the ledger's."""
    text = pull_sql("s", 'we"ird', "id", ["a"]).as_string()
    assert text.startswith('WITH w AS (UPDATE "s"."we""ird" SET "a" = %s WHERE "id" = %s')
    assert 'INSERT INTO "s"."cdcsync_pull_ledger"' in text and "to_jsonb(w)" in text
    assert text.endswith('AS "__cdcsync_written_ms" FROM w')
    check = holds_pull_sql("s", "t", "id").as_string()
    assert "(to_jsonb(t) - %s::text[]) = (l.pulled - %s::text[])" in check
    assert (
        ledger_ddl("s")
        .as_string()
        .startswith('CREATE TABLE IF NOT EXISTS "s"."cdcsync_pull_ledger"')
    )


def test_columns_query_is_parameterised() -> None:
    text = columns_sql().as_string()
    assert "information_schema.columns" in text
    assert text.count("%s") == 2


def test_update_needs_a_column() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        update_sql("s", "t", "id", [])


def test_checked_columns() -> None:
    assert checked_columns({"b": 1, "a": 2}, {"a", "b"}, "x") == ["b", "a"]
    with pytest.raises(MappingError, match=r"update of t: column\(s\) \['notes'\] are not allowed"):
        checked_columns({"a": 1, "notes": 2}, {"a"}, "update of t")


# -- values ----------------------------------------------------------------------------


def test_adapt_sends_dicts_as_jsonb_and_leaves_the_rest() -> None:
    assert isinstance(adapt({"a": 1}), Jsonb)
    assert isinstance(adapt([{"a": 1}]), Jsonb)
    assert adapt(["a", "b"]) == ["a", "b"]
    assert adapt("x") == "x"
    assert adapt(None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        (3, 3),
        (True, True),
        (None, None),
        (Decimal("12.50"), "12.50"),
        (Decimal("1E+2"), "100"),
        (UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        ([Decimal("1.5"), None], ["1.5", None]),
        (dt.date(2024, 1, 2), dt.date(2024, 1, 2)),
    ],
)
def test_json_friendly(value: Any, expected: Any) -> None:
    assert json_friendly(value) == expected


# -- configuration ---------------------------------------------------------------------


def test_invalid_dsn_is_a_configuration_error_without_the_dsn() -> None:
    with pytest.raises(ConfigurationError, match="connection string is invalid") as info:
        PostgresWriter("host=x password=hunter2 =broken", table="t", allowed_columns=[])
    assert "hunter2" not in str(info.value)


def test_repr_hides_the_password() -> None:
    assert "s3cr3t" not in repr(writer())
    assert "public.contact" in repr(writer())


async def test_refused_columns_never_reach_the_database() -> None:
    w = writer(status_columns=["sync_status"])
    with pytest.raises(MappingError, match="notes"):
        await w.update(1, {"email": "a@x.org", "notes": "x"})
    with pytest.raises(MappingError, match="sync_status"):
        await w.insert({"sync_status": "ok"})
    with pytest.raises(MappingError, match="email"):
        await w.write_status(1, {"email": "a@x.org"})
    assert w._conn is None


# -- error translation -----------------------------------------------------------------


def test_operational_error_is_transient_and_redacted() -> None:
    exc = psycopg.OperationalError(f"connection failed: {DSN} refused")
    err = writer()._translate(exc, "update", ["email"])
    assert isinstance(err, SinkTransientError)
    assert "s3cr3t" not in str(err)
    assert "public.contact: update failed" in str(err)


@pytest.mark.parametrize(
    "exc",
    [
        pg_errors.AdminShutdown("terminating connection"),
        pg_errors.SerializationFailure("could not serialize"),
        pg_errors.QueryCanceled("canceling statement"),
        psycopg.InterfaceError("the connection is closed"),
        pg_errors.InFailedSqlTransaction("aborted"),
    ],
)
def test_connection_trouble_is_transient(exc: psycopg.Error) -> None:
    assert isinstance(writer()._translate(exc, "fetch", ()), SinkTransientError)


@pytest.mark.parametrize(
    ("exc", "expected", "absent"),
    [
        (
            pg_errors.UniqueViolation("duplicate key value violates unique constraint"),
            ["UniqueViolation", "SQLSTATE 23505", "['email']"],
            [],
        ),
        (
            pg_errors.InvalidTextRepresentation('invalid input syntax for type integer: "s3cret"'),
            ["InvalidTextRepresentation", "SQLSTATE 22P02", "columns written"],
            ["s3cret"],
        ),
        (
            psycopg.ProgrammingError("cannot adapt type 'set' using placeholder '%s'"),
            ["cannot adapt type 'set'"],
            [],
        ),
        (pg_errors.UndefinedColumn("column does not exist"), ["SQLSTATE 42703"], []),
    ],
)
def test_refusals_are_permanent_and_name_table_and_columns(
    exc: psycopg.Error, expected: list[str], absent: list[str]
) -> None:
    err = writer()._translate(exc, "update", ["email"])
    assert isinstance(err, SinkPermanentError)
    assert str(err).startswith("PostgreSQL public.contact: update failed")
    for text in expected:
        assert text in str(err)
    for text in absent:
        assert text not in str(err)


# -- reconnects, with a fake connection ------------------------------------------------


class FakeCursor:
    def __init__(self, row: dict[str, Any] | None) -> None:
        self.row = row
        self.rowcount = 0 if row is None else 1

    async def fetchone(self) -> dict[str, Any] | None:
        return self.row


class FakeConnection:
    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.closed = False
        self.broken = False
        self.queries: list[tuple[str, list[Any]]] = []

    async def execute(self, query: Any, params: list[Any]) -> FakeCursor:
        self.queries.append((query.as_string(), list(params)))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            self.broken = isinstance(outcome, psycopg.OperationalError)
            raise outcome
        return FakeCursor(outcome)

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[FakeConnection]:
    """Connections handed out in order by the patched ``AsyncConnection.connect``."""
    pool: list[FakeConnection] = []
    handed: list[FakeConnection] = []

    async def connect(*args: Any, **kwargs: Any) -> FakeConnection:
        assert kwargs["autocommit"] is True
        conn = pool.pop(0)
        handed.append(conn)
        return conn

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", connect)
    return pool


async def test_stale_connection_is_replaced_and_idempotent_call_retried(
    connections: list[FakeConnection],
) -> None:
    row = {"id": 1, "email": "a@x.org", "score": Decimal("2.0")}
    first = FakeConnection([row, psycopg.OperationalError("server closed the connection")])
    second = FakeConnection([row])
    connections += [first, second]
    w = writer()
    assert await w.fetch(1) == {"id": 1, "email": "a@x.org", "score": "2.0"}
    assert await w.update(1, {"email": "a@x.org"}) == {**row, "score": "2.0"}
    assert first.closed
    assert second.queries[0][1] == ["a@x.org", 1]


async def test_insert_is_not_retried(connections: list[FakeConnection]) -> None:
    connections += [FakeConnection([{"id": 1}, psycopg.OperationalError("lost")])]
    w = writer()
    await w.fetch(1)
    with pytest.raises(SinkTransientError):
        await w.insert({"email": "a@x.org"})
    assert w._conn is None


async def test_failure_on_a_fresh_connection_is_not_retried(
    connections: list[FakeConnection],
) -> None:
    conn = FakeConnection([psycopg.OperationalError("lost")])
    connections += [conn]
    with pytest.raises(SinkTransientError, match="fetch failed"):
        await writer().fetch(1)


async def test_permanent_error_keeps_the_connection(connections: list[FakeConnection]) -> None:
    conn = FakeConnection([pg_errors.NotNullViolation("null value"), {"id": 1}])
    connections += [conn]
    w = writer()
    with pytest.raises(SinkPermanentError, match="SQLSTATE 23502"):
        await w.update(1, {"email": None})
    assert await w.fetch(1) == {"id": 1}
    assert not conn.closed


async def test_write_status_on_a_gone_row_is_quiet(connections: list[FakeConnection]) -> None:
    conn = FakeConnection([None])
    connections += [conn]
    w = writer(status_columns=["sync_status", "synced_at"])
    assert await w.write_status(9, {"sync_status": "ok"}) is None
    assert conn.queries[0][0].startswith('UPDATE "public"."contact" SET "sync_status" = %s')


async def test_update_with_nothing_to_write_returns_the_row(
    connections: list[FakeConnection],
) -> None:
    conn = FakeConnection([{"id": 1}])
    connections += [conn]
    assert await writer().update(1, {}) == {"id": 1}
    assert conn.queries[0][0].startswith("SELECT")
