"""The ``postgres`` provider against the local stack's PostgreSQL, on a scratch table of its own."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from cdcsync.errors import (
    ConfigurationError,
    MappingError,
    SinkConflictError,
    SinkPermanentError,
    SinkTransientError,
)
from cdcsync.schemas.events import AuditRecord
from cdcsync.sinks.base import CallCounter, call_counter
from cdcsync.sinks.providers.postgres import PgTableSettings, PgTableSink
from cdcsync.sinks.registry import ProviderContext, SinkRegistry
from cdcsync.stack.settings import StackSettings

DSN_ENV = "CDCSYNC_IT_PGTABLE_DSN"


class ListAuditor:
    """Keeps every audit record, as the worker's auditor would send them to the topic."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def record(self, record: AuditRecord) -> None:
        self.records.append(record)

    def take(self) -> list[AuditRecord]:
        records, self.records = self.records, []
        return records


@pytest.fixture
def table(scratch_table: Callable[[str, str], str]) -> str:
    """A scratch table of its own (``dsn`` and ``scratch_table`` are in conftest.py)."""
    return scratch_table(
        "pgtable_it",
        """id bigserial PRIMARY KEY,
        email text,
        name text,
        score numeric(10, 2),
        data jsonb,
        region text""",
    )


@pytest.fixture
def auditor() -> ListAuditor:
    return ListAuditor()


@pytest.fixture
async def sink(
    dsn: str, table: str, auditor: ListAuditor, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PgTableSink]:
    """Built the way the worker builds it: through the registry's entry point, DSN as a secret."""
    monkeypatch.setenv(DSN_ENV, dsn)
    registry = SinkRegistry(entry_points_group="cdcsync.providers")
    built = registry.build(
        "postgres",
        {"dsn": dsn, "table": table, "object_type": "contact", "page_size": 3},
        ProviderContext(integration="reporting", auditor=auditor),
    )
    assert isinstance(built, PgTableSink)
    yield built
    await built.aclose()


def _xmin(dsn: str, table: str, row_id: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        query = sql.SQL("SELECT xmin::text FROM {} WHERE id = %s").format(
            sql.Identifier("public", table)
        )
        row = conn.execute(query, [int(row_id)]).fetchone()
        assert row is not None
        return str(row[0])


def _edit(dsn: str, table: str, row_id: str, **values: Any) -> None:
    """An edit made by someone else in the target database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values
        )
        conn.execute(
            sql.SQL("UPDATE {} SET {} WHERE id = %s").format(
                sql.Identifier("public", table), assignments
            ),
            [*values.values(), int(row_id)],
        )


async def test_create_get_find(sink: PgTableSink, dsn: str, table: str) -> None:
    created = await sink.create(
        {"email": "ada@example.org", "name": "Ada", "score": "12.5", "data": {"k": [1]}}
    )
    assert created.id.isdigit()  # from the bigserial default
    assert created.row_id == _xmin(dsn, table, created.id)
    assert created.fields == {
        "email": "ada@example.org",
        "name": "Ada",
        "score": "12.50",
        "data": {"k": [1]},
        "region": None,
    }
    assert await sink.get(created.id) == created
    assert await sink.get("999999999") is None

    assert await sink.find({"email": "ada@example.org"}) == created
    assert await sink.find({"email": "ada@example.org", "region": None}) == created
    assert await sink.find({"email": "nobody@example.org"}) is None

    explicit = await sink.create({"id": 424242, "email": "grace@example.org"})
    assert explicit.id == "424242"

    await sink.create({"email": "twin@example.org"})
    await sink.create({"email": "twin@example.org"})
    with pytest.raises(SinkPermanentError, match=r"natural key \['email'\] is not unique"):
        await sink.find({"email": "twin@example.org"})
    with pytest.raises(SinkPermanentError, match="without a natural key"):
        await sink.find({})


async def test_update_with_and_without_the_row_version(
    sink: PgTableSink, dsn: str, table: str
) -> None:
    created = await sink.create({"email": "ada@example.org", "name": "Ada"})

    updated = await sink.update(created.id, {"name": "Ada L."}, expected_row_id=created.row_id)
    assert updated.id == created.id and updated.fields["name"] == "Ada L."
    assert updated.row_id != created.row_id
    assert updated.row_id == _xmin(dsn, table, created.id)

    # the old version no longer matches: the row changed since it was read
    with pytest.raises(SinkConflictError) as conflict:
        await sink.update(created.id, {"name": "stale"}, expected_row_id=created.row_id)
    assert conflict.value.status_code == 412
    assert str(updated.row_id) in str(conflict.value)
    assert (await sink.get(created.id)) == updated  # nothing written

    # someone else edits the row: a no-op edit still writes a new version
    _edit(dsn, table, created.id, name="Ada L.")
    edited = await sink.get(created.id)
    assert edited is not None and edited.row_id != updated.row_id
    with pytest.raises(SinkConflictError):
        await sink.update(created.id, {"name": "mine"}, expected_row_id=updated.row_id)

    # without a version the write always applies
    forced = await sink.update(created.id, {"name": "forced", "id": created.id})
    assert forced.fields["name"] == "forced" and forced.row_id != edited.row_id

    # an empty payload writes nothing but still checks the version
    assert await sink.update(created.id, {}, expected_row_id=forced.row_id) == forced
    with pytest.raises(SinkConflictError):
        await sink.update(created.id, {}, expected_row_id=created.row_id)

    with pytest.raises(MappingError, match="immutable"):
        await sink.update(created.id, {"id": int(created.id) + 1, "name": "x"})

    for expected in (None, forced.row_id):
        with pytest.raises(SinkPermanentError) as gone:
            await sink.update("999999999", {"name": "x"}, expected_row_id=expected)
        assert gone.value.status_code == 404 and not isinstance(gone.value, SinkConflictError)


async def test_delete_is_idempotent_and_checks_the_version(sink: PgTableSink) -> None:
    first = await sink.create({"email": "a@example.org"})
    second = await sink.create({"email": "b@example.org"})

    assert await sink.delete(first.id) is True
    assert await sink.delete(first.id) is False
    assert await sink.get(first.id) is None

    changed = await sink.update(second.id, {"name": "B"})
    with pytest.raises(SinkConflictError):
        await sink.delete(second.id, expected_row_id=second.row_id)
    assert await sink.get(second.id) == changed
    assert await sink.delete(second.id, expected_row_id=changed.row_id) is True
    assert await sink.delete(second.id, expected_row_id=changed.row_id) is False


async def test_list_pages_by_id(sink: PgTableSink) -> None:
    assert [r async for r in sink.list()] == []
    created = [await sink.create({"email": f"{n}@example.org"}) for n in range(7)]
    listed = [r async for r in sink.list()]  # page_size 3: pages of 3, 3, 1
    assert listed == sorted(created, key=lambda r: int(r.id))

    await sink.delete(created[6].id)
    exactly_two_pages = [r async for r in sink.list()]  # 6 rows: 3, 3, then an empty page
    assert [r.id for r in exactly_two_pages] == [r.id for r in created[:6]]


async def test_every_call_is_audited_and_counted(
    sink: PgTableSink, auditor: ListAuditor, dsn: str, table: str
) -> None:
    counter = CallCounter(entity="contact", entity_id="42")
    token = call_counter.set(counter)
    try:
        payload = {"email": "ada@example.org", "name": "Ada"}
        created = await sink.create(payload)
        await sink.get(created.id)
        await sink.update(created.id, {"name": "Ada L."}, expected_row_id=created.row_id)
        with pytest.raises(SinkConflictError):  # UPDATE, then SELECT of the current version
            await sink.update(created.id, {"name": "x"}, expected_row_id=created.row_id)
        await sink.delete(created.id)
    finally:
        call_counter.reset(token)

    records = auditor.take()
    assert [r.method for r in records] == [
        "INSERT",
        "SELECT",
        "UPDATE",
        "UPDATE",
        "SELECT",
        "DELETE",
    ]
    assert counter.calls == len(records)
    stack = StackSettings()
    for record in records:
        assert record.provider == "postgres" and record.integration == "reporting"
        # scheme, host, port and database only: no user, no password (the local stack's
        # password equals its user and database names, so check the shape, not the word)
        assert record.recipient == f"postgresql://{stack.pg_host}:{stack.pg_port}/{stack.pg_db}"
        assert "@" not in record.recipient and "password" not in record.model_dump_json()
        assert record.target == f"public.{table}"
        assert (record.entity, record.entity_id) == ("contact", "42")

    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    assert records[0].payload_digest == f"sha256:{hashlib.sha256(body).hexdigest()}"
    assert records[0].payload_bytes == len(body)
    update_body = b'{"name":"Ada L."}'
    assert records[2].payload_digest == f"sha256:{hashlib.sha256(update_body).hexdigest()}"
    for read in (records[1], records[4], records[5]):
        assert read.payload_digest is None and read.payload_bytes == 0


async def test_refused_statements_name_columns_never_values(
    sink: PgTableSink, dsn: str, table: str
) -> None:
    secret_value = "do-not-print-" + uuid.uuid4().hex
    with pytest.raises(SinkPermanentError) as caught:
        await sink.create({"email": secret_value, "score": secret_value})
    message = str(caught.value)
    assert f"public.{table}" in message and "create failed" in message
    assert secret_value not in message and dsn not in message

    with pytest.raises(SinkPermanentError, match="nope"):
        await sink.create({"nope": 1})

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD UNIQUE (email)").format(sql.Identifier("public", table))
        )
    await sink.create({"email": secret_value})
    with pytest.raises(SinkPermanentError) as duplicate:
        await sink.create({"email": secret_value})
    assert "UniqueViolation" in str(duplicate.value) and secret_value not in str(duplicate.value)


async def test_columns_limit_what_the_sync_writes(dsn: str, table: str) -> None:
    settings = PgTableSettings(
        dsn=dsn, table=table, object_type="contact", columns=("email", "name")
    )
    async with aclosing(PgTableSink(settings)) as sink:
        created = await sink.create({"email": "a@example.org", "name": "A"})
        with pytest.raises(MappingError, match=r"\['score'\]"):
            await sink.update(created.id, {"score": "1"})
        with pytest.raises(MappingError, match=r"\['region'\]"):
            await sink.create({"email": "b@example.org", "region": "eu"})


async def test_dsn_from_the_environment_and_connection_errors(
    dsn: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DSN_ENV, dsn)
    settings = PgTableSettings(dsn_env=DSN_ENV, table=table, object_type="contact")
    async with aclosing(PgTableSink(settings)) as sink:
        assert (await sink.create({"email": "env@example.org"})).id

    monkeypatch.delenv(DSN_ENV)
    with pytest.raises(ConfigurationError, match=DSN_ENV):
        PgTableSink(settings)

    password = "pw-" + uuid.uuid4().hex
    dead = make_conninfo(dsn, port=1, password=password)
    unreachable = PgTableSettings(dsn=dead, table=table, object_type="contact")
    async with aclosing(PgTableSink(unreachable)) as sink:
        with pytest.raises(SinkTransientError) as lost:
            await sink.get("1")
        assert password not in str(lost.value) and dead not in str(lost.value)


async def test_a_text_id_column_in_another_schema(dsn: str) -> None:
    schema = f"pgtable_it_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL('CREATE TABLE {} (code text PRIMARY KEY, "Label" text)').format(
                sql.Identifier(schema, "Items")
            )
        )
    try:
        settings = PgTableSettings.model_validate(
            {"dsn": dsn, "schema": schema, "table": "Items", "id_column": "code",
             "object_type": "item", "page_size": 2}
        )  # fmt: skip
        async with aclosing(PgTableSink(settings)) as sink:
            for code in ("c", "a", "b", "d", "e"):
                created = await sink.create({"code": code, "Label": code.upper()})
                assert created.id == code and created.fields == {"Label": code.upper()}
            assert [r.id async for r in sink.list()] == ["a", "b", "c", "d", "e"]
            found = await sink.find({"Label": "C"})
            assert found is not None and found.id == "c"
            updated = await sink.update("c", {"Label": "see"}, expected_row_id=found.row_id)
            assert updated.fields == {"Label": "see"}
            assert await sink.delete("c", expected_row_id=updated.row_id)
            assert sink.link("c") == f"{sink.recipient}/{schema}.Items/c"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
