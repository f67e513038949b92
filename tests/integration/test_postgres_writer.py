"""PostgresWriter against the local stack's PostgreSQL, on a scratch table of its own."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from cdcsync.errors import (
    ConfigurationError,
    MappingError,
    SinkPermanentError,
    SinkTransientError,
)
from cdcsync.mappers import FieldMap, PersonCompanyMapper
from cdcsync.sinks.base import WRITTEN_MS
from cdcsync.sinks.writeback import PostgresWriter

ALLOWED = [
    "email",
    "first_name",
    "last_name",
    "company_name",
    "tags",
    "score",
    "ref",
    "active",
    "n",
    "data",
]
STATUS = ["sync_status", "sync_external_id", "sync_at", "sync_error", "sync_attempts"]


@pytest.fixture
def table(scratch_table: Callable[[str, str], str]) -> str:
    """A scratch table of its own (``dsn`` and ``scratch_table`` are in conftest.py)."""
    return scratch_table(
        "it_pgwriter",
        """id bigserial PRIMARY KEY,
        email text NOT NULL UNIQUE,
        first_name text,
        last_name text,
        company_name text,
        tags text[],
        score numeric(10, 2),
        ref uuid,
        active boolean,
        n integer,
        data jsonb,
        updated_at timestamptz NOT NULL DEFAULT now(),
        sync_status text,
        sync_external_id text,
        sync_at timestamptz,
        sync_error text,
        sync_attempts integer""",
    )


@pytest.fixture
async def writer(dsn: str, table: str) -> AsyncIterator[PostgresWriter]:
    w = PostgresWriter(dsn, table=table, allowed_columns=ALLOWED, status_columns=STATUS)
    yield w
    await w.aclose()


async def test_columns_and_start_up_check(writer: PostgresWriter, dsn: str, table: str) -> None:
    assert {"id", "email", "updated_at", *ALLOWED, *STATUS} == await writer.columns()
    await writer.verify()
    async with PostgresWriter(dsn, table=table, allowed_columns=["email", "nope"]) as bad:
        with pytest.raises(ConfigurationError, match=r"\['nope'\] do not exist"):
            await bad.verify()
    async with PostgresWriter(dsn, table=table + "_missing", allowed_columns=[]) as gone:
        assert await gone.columns() == set()
        with pytest.raises(ConfigurationError, match="no such table"):
            await gone.verify()


async def test_insert_fetch_update_delete(writer: PostgresWriter) -> None:
    ref = uuid.uuid4()
    row = await writer.insert(
        {
            "email": "ada@example.org",
            "first_name": "Ada",
            "tags": ["a", "b"],
            "score": "12.5",
            "ref": str(ref),
            "active": True,
            "n": 3,
            "data": {"k": [1, 2]},
        }
    )
    assert isinstance(row["id"], int)
    assert row["email"] == "ada@example.org"
    assert row["tags"] == ["a", "b"]
    assert row["score"] == "12.50"  # numeric as Debezium sends it with decimal.handling.mode=string
    assert row["ref"] == str(ref)
    assert row["active"] is True and row["n"] == 3
    assert row["data"] == {"k": [1, 2]}
    assert isinstance(row["updated_at"], dt.datetime)  # temporal values stay Python types
    assert row["last_name"] is None

    assert await writer.fetch(row["id"]) == row
    assert await writer.fetch(str(row["id"])) == row  # the key as the agent holds it: a string

    after = await writer.update(str(row["id"]), {"last_name": "Lovelace", "tags": []})
    assert after is not None
    assert after["last_name"] == "Lovelace" and after["tags"] == []
    assert after["first_name"] == "Ada"  # untouched columns stay
    # the database's clock at the write, which orders it against Debezium's commit times
    assert abs(after[WRITTEN_MS] - time.time() * 1000) < 60_000

    assert await writer.update(row["id"] + 1000, {"last_name": "x"}) is None
    assert await writer.delete(row["id"]) is True
    assert await writer.delete(row["id"]) is False
    assert await writer.fetch(row["id"]) is None


async def test_disallowed_columns_are_never_written(writer: PostgresWriter) -> None:
    row = await writer.insert({"email": "b@example.org"})
    with pytest.raises(MappingError, match="sync_status"):
        await writer.update(row["id"], {"first_name": "B", "sync_status": "x"})
    with pytest.raises(MappingError, match="updated_at"):
        await writer.update(row["id"], {"updated_at": "2000-01-01T00:00:00Z"})
    assert await writer.fetch(row["id"]) == row


async def test_write_status(writer: PostgresWriter) -> None:
    row = await writer.insert({"email": "c@example.org"})
    now = dt.datetime.now(dt.UTC)
    await writer.write_status(
        row["id"],
        {"sync_status": "synced", "sync_external_id": "x-1", "sync_at": now, "sync_attempts": 1},
    )
    stored = await writer.fetch(row["id"])
    assert stored is not None
    assert (stored["sync_status"], stored["sync_external_id"]) == ("synced", "x-1")
    assert stored["sync_at"] == now and stored["sync_attempts"] == 1
    await writer.delete(row["id"])
    await writer.write_status(row["id"], {"sync_status": "synced"})  # gone: no error


@pytest.mark.parametrize(
    ("values", "expected", "secret"),
    [
        ({"email": "dup@example.org"}, ["SQLSTATE 23505", "constraint"], "dup@example"),
        ({"email": None}, ["SQLSTATE 23502", "column 'email'"], None),
        ({"email": "d@example.org", "n": "s3cret-value"}, ["SQLSTATE 22P02"], "s3cret-value"),
        ({"email": "e@example.org", "ref": "not-a-uuid-s3cret"}, ["22P02"], "s3cret"),
    ],
)
async def test_refused_writes_are_permanent_and_name_no_values(
    writer: PostgresWriter, table: str, values: dict[str, Any], expected: list[str], secret: str
) -> None:
    await writer.insert({"email": "dup@example.org"})
    with pytest.raises(SinkPermanentError) as info:
        await writer.insert(values)
    message = str(info.value)
    assert message.startswith(f"PostgreSQL public.{table}: insert failed")
    for text in expected:
        assert text in message
    if secret:
        assert secret not in message
    assert await writer.fetch(1) is not None  # the connection is still usable


async def test_concurrent_callers_share_the_connection(writer: PostgresWriter) -> None:
    rows = await asyncio.gather(*(writer.insert({"email": f"p{i}@example.org"}) for i in range(20)))
    updated = await asyncio.gather(*(writer.update(r["id"], {"n": i}) for i, r in enumerate(rows)))
    assert [u["n"] for u in updated if u is not None] == list(range(20))


async def test_reconnects_after_the_server_drops_the_connection(
    writer: PostgresWriter, dsn: str
) -> None:
    row = await writer.insert({"email": "r@example.org"})
    assert writer._conn is not None
    pid = writer._conn.info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    assert await writer.fetch(row["id"]) == row
    assert writer._conn.info.backend_pid != pid


async def test_unreachable_server_is_transient_and_hides_the_password(table: str) -> None:
    w = PostgresWriter(
        "host=127.0.0.1 port=1 dbname=cdcsync user=cdcsync password=pw-s3cret connect_timeout=2",
        table=table,
        allowed_columns=ALLOWED,
    )
    with pytest.raises(SinkTransientError) as info:
        await w.fetch(1)
    assert "pw-s3cret" not in str(info.value)
    await w.aclose()


async def test_pull_round_trip_through_the_table(writer: PostgresWriter) -> None:
    """External fields -> to_source -> UPDATE ... RETURNING * -> to_external: the same fields."""
    mapper = PersonCompanyMapper(
        FieldMap({"email": "email", "labels": {"column": "tags", "mode": "append"}})
    )
    row = await writer.insert({"email": "acme@example.org", "first_name": "Old", "tags": ["x"]})
    fields = {"email": "acme@example.org", "name": "Acme", "labels": ["y"]}
    values = mapper.to_source(fields, current=row)
    assert set(values) <= mapper.pull_columns
    after = await writer.update(row["id"], values)
    assert after is not None
    assert after["first_name"] is None and after["company_name"] == "Acme"
    assert mapper.to_external(after) == {
        "email": "acme@example.org",
        "labels": ["x", "y"],
        "firstName": None,
        "lastName": None,
        "name": "Acme",
    }


async def test_the_pull_ledger_tells_a_pulled_row_from_an_edited_one(
    writer: PostgresWriter, dsn: str, table: str
) -> None:
    row = await writer.insert({"email": "p@example.org", "first_name": "P"})
    key = str(row["id"])
    assert await writer.holds_pull(key) is False  # nothing pulled yet

    after = await writer.pull(key, {"first_name": "Pulled", "tags": ["x"]})
    assert after is not None and after["first_name"] == "Pulled" and WRITTEN_MS in after
    assert writer.ledger is True
    assert await writer.holds_pull(key) is True
    await writer.write_status(key, {"sync_status": "synced"})  # status columns do not count
    assert await writer.holds_pull(key) is True

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"UPDATE {table} SET last_name = 'Edited' WHERE id = %s", [row["id"]])
    assert await writer.holds_pull(key) is False  # a user's edit since the pull
    await writer.pull(key, {"first_name": "Again"})
    assert await writer.holds_pull(key) is True
    assert await writer.pull(str(row["id"] + 1000), {"first_name": "x"}) is None


async def test_a_restarted_worker_reads_the_ledger_before_pulling_itself(
    writer: PostgresWriter, dsn: str, table: str
) -> None:
    """The kill -9 the ledger is for always comes back as a new process, whose first
    question is whether the row is its own pull's (quick soak 120104548f80: a worker that
    had pulled nothing yet answered no, and the old row was pushed over a newer edit)."""
    row = await writer.insert({"email": "r@example.org", "first_name": "R"})
    await writer.pull(str(row["id"]), {"first_name": "Pulled"})  # then the worker dies
    async with PostgresWriter(dsn, table=table, allowed_columns=ALLOWED,
                              status_columns=STATUS) as restarted:  # fmt: skip
        assert await restarted.holds_pull(str(row["id"])) is True


async def test_without_privilege_on_the_pull_ledger_a_pull_is_a_plain_update(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    schema = f"it_ledger_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.t (id bigint PRIMARY KEY, first_name text)")
        await conn.execute(f"INSERT INTO {schema}.t VALUES (1, 'Q')")
    try:
        async with PostgresWriter(dsn, table="t", schema=schema, allowed_columns=ALLOWED) as w:
            await w.pull("1", {"first_name": "Q2"})  # creates the ledger
            assert w.ledger is True
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(f"REVOKE INSERT ON {schema}.cdcsync_pull_ledger FROM CURRENT_USER")
        async with PostgresWriter(dsn, table="t", schema=schema, allowed_columns=ALLOWED) as w:
            after = await w.pull("1", {"first_name": "Limited"})
            assert after is not None and after["first_name"] == "Limited"
            assert w.ledger is False
            assert await w.holds_pull("1") is False
        assert "no privilege to write the pull ledger" in caplog.text
    finally:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
