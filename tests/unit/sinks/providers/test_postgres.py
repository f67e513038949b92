"""The ``postgres`` provider without a server: statements, settings, DSN, recipient, provider."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

from cdcsync.errors import ConfigurationError
from cdcsync.sinks.providers.postgres import PgTableSettings, PgTableSink, provider
from cdcsync.sinks.providers.postgres.sink import audit_body
from cdcsync.sinks.providers.postgres.statements import (
    delete_row_sql,
    find_sql,
    get_sql,
    insert_row_sql,
    page_sql,
    update_row_sql,
    version_sql,
)
from cdcsync.sinks.registry import Provider, ProviderContext, SinkRegistry

ROW = '*, xmin::text AS "_cdcsync_xmin"'
BASE: dict[str, Any] = {"table": "contacts", "object_type": "contact"}
DSN = "postgresql://sync:s3cr3t-pw@db.example.com:6543/reporting"


# -- statements ---------------------------------------------------------------------------


def test_get_and_version_sql() -> None:
    assert get_sql("public", "contacts", "id").as_string() == (
        f'SELECT {ROW} FROM "public"."contacts" WHERE "id" = %s'
    )
    assert version_sql("crm", "Contacts", "uid").as_string() == (
        'SELECT xmin::text AS "_cdcsync_xmin" FROM "crm"."Contacts" WHERE "uid" = %s'
    )


def test_find_sql_with_nulls_and_a_limit_of_two() -> None:
    query = find_sql("public", "contacts", "id", ["email", "region"], {"region"})
    assert query.as_string() == (
        f'SELECT {ROW} FROM "public"."contacts" WHERE "email" = %s AND "region" IS NULL '
        'ORDER BY "id" LIMIT 2'
    )
    with pytest.raises(ValueError, match="at least one key"):
        find_sql("public", "contacts", "id", [])


def test_insert_sql_returns_the_row_and_its_version() -> None:
    assert insert_row_sql("public", "contacts", ["email", "name"]).as_string() == (
        f'INSERT INTO "public"."contacts" ("email", "name") VALUES (%s, %s) RETURNING {ROW}'
    )
    assert insert_row_sql("public", "contacts", []).as_string() == (
        f'INSERT INTO "public"."contacts" DEFAULT VALUES RETURNING {ROW}'
    )


def test_update_sql_with_and_without_the_version_check() -> None:
    assert update_row_sql("public", "contacts", "id", ["name"], check_version=True).as_string() == (
        'UPDATE "public"."contacts" SET "name" = %s WHERE "id" = %s AND xmin::text = %s '
        f"RETURNING {ROW}"
    )
    assert update_row_sql(
        "public", "contacts", "id", ["a", "b"], check_version=False
    ).as_string() == (
        f'UPDATE "public"."contacts" SET "a" = %s, "b" = %s WHERE "id" = %s RETURNING {ROW}'
    )
    with pytest.raises(ValueError, match="at least one column"):
        update_row_sql("public", "contacts", "id", [], check_version=False)


def test_delete_sql() -> None:
    assert delete_row_sql("public", "contacts", "id", check_version=False).as_string() == (
        'DELETE FROM "public"."contacts" WHERE "id" = %s'
    )
    assert delete_row_sql("public", "contacts", "id", check_version=True).as_string() == (
        'DELETE FROM "public"."contacts" WHERE "id" = %s AND xmin::text = %s'
    )


def test_page_sql_is_keyset_pagination() -> None:
    assert page_sql("public", "contacts", "id", after=False).as_string() == (
        f'SELECT {ROW} FROM "public"."contacts" ORDER BY "id" LIMIT %s'
    )
    assert page_sql("public", "contacts", "id", after=True).as_string() == (
        f'SELECT {ROW} FROM "public"."contacts" WHERE "id" > %s ORDER BY "id" LIMIT %s'
    )


def test_identifiers_are_quoted_never_interpolated() -> None:
    evil = 'x"; DROP TABLE contacts; --'
    query = insert_row_sql("public", "contacts", [evil]).as_string()
    assert '"x""; DROP TABLE contacts; --"' in query


def test_audit_body_is_compact_sorted_json() -> None:
    body = audit_body({"name": "Ada", "email": "a@example.org", "score": None})
    assert body == b'{"email":"a@example.org","name":"Ada","score":null}'
    assert json.loads(audit_body({"at": dt.date(2024, 1, 2)})) == {"at": "2024-01-02"}


# -- settings -----------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = PgTableSettings(**BASE)
    assert settings.schema_ == "public" and settings.id_column == "id"
    assert settings.page_size == 500 and settings.columns is None
    assert settings.dsn is None and settings.dsn_env is None
    defaults = provider.settings_defaults()
    assert defaults["table"] is ... and defaults["object_type"] is ...
    assert defaults["id_column"] == "id" and defaults["schema_"] == "public"


def test_settings_take_schema_by_its_name_and_keep_the_dsn_secret() -> None:
    settings = PgTableSettings.model_validate({**BASE, "schema": "crm", "dsn": DSN})
    assert settings.schema_ == "crm"
    assert "s3cr3t-pw" not in repr(settings) and "s3cr3t-pw" not in str(settings.model_dump())
    with pytest.raises(ValidationError):
        settings.table = "other"  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"unknown": 1}, "unknown"),
        ({"table": ""}, "table"),
        ({"id_column": "a\x00b"}, "id_column"),
        ({"schema": "s" * 64}, "schema"),
        ({"columns": ["a", "a"]}, "columns"),
        ({"columns": ["ok", ""]}, "columns"),
        ({"page_size": 0}, "page_size"),
        ({"object_type": ""}, "object_type"),
        ({"link_template": "https://x/{nope}"}, "link_template"),
    ],
)
def test_invalid_settings(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PgTableSettings.model_validate({**BASE, **extra})
    assert field in str(caught.value)


def test_registry_validation_names_fields_never_values() -> None:
    registry = SinkRegistry({"postgres": provider})
    with pytest.raises(ConfigurationError) as caught:
        registry.build("postgres", {**BASE, "dsn": 12345678, "page_size": "s3cr3t-pw"})
    assert "page_size" in str(caught.value) and "s3cr3t-pw" not in str(caught.value)


# -- the sink, before it connects ---------------------------------------------------------


def test_the_dsn_comes_from_the_secret_or_the_environment() -> None:
    sink = PgTableSink(
        PgTableSettings(**BASE, dsn_env="REPORTING_DB"), environ={"REPORTING_DB": DSN}
    )
    assert sink.recipient == "postgresql://db.example.com:6543/reporting"
    with pytest.raises(ConfigurationError, match="REPORTING_DB") as caught:
        PgTableSink(PgTableSettings(**BASE, dsn_env="REPORTING_DB"), environ={})
    assert "not set" in str(caught.value)
    with pytest.raises(ConfigurationError, match="no connection string"):
        PgTableSink(PgTableSettings(**BASE), environ={})
    with pytest.raises(ConfigurationError, match="invalid") as invalid:
        PgTableSink(PgTableSettings(**BASE, dsn="host=x password='s3cr3t-pw"), environ={})
    assert "s3cr3t-pw" not in str(invalid.value)


@pytest.mark.parametrize(
    ("dsn", "recipient"),
    [
        (DSN, "postgresql://db.example.com:6543/reporting"),
        ("host=10.0.0.5 dbname=crm user=u password=s3cr3t-pw", "postgresql://10.0.0.5:5432/crm"),
        ("postgresql://u:s3cr3t-pw@[::1]:5433/crm", "postgresql://[::1]:5433/crm"),
        ("host=/var/run/postgresql dbname=crm", "postgresql://localhost:5432/crm"),
    ],
)
def test_recipient_never_holds_credentials(dsn: str, recipient: str) -> None:
    sink = PgTableSink(PgTableSettings(**BASE, dsn=dsn))
    assert sink.recipient == recipient
    assert "s3cr3t-pw" not in repr(sink) and "s3cr3t-pw" not in sink.link("1")


def test_links() -> None:
    sink = PgTableSink(PgTableSettings(**BASE, dsn=DSN))
    assert sink.link("a/b") == "postgresql://db.example.com:6543/reporting/public.contacts/a%2Fb"
    templated = PgTableSink(
        PgTableSettings(
            **BASE, dsn=DSN, link_template="https://bi.example.com/{schema}/{table}/{id}"
        )
    )
    assert templated.link("7") == "https://bi.example.com/public/contacts/7"


def test_the_provider_object() -> None:
    assert isinstance(provider, Provider)
    assert provider.identifier == "postgres" and provider.settings_model is PgTableSettings
    registry = SinkRegistry(entry_points_group="cdcsync.providers")
    assert registry.provider("postgres") is provider  # the entry point in pyproject.toml
    sink = registry.build(
        "postgres", {**BASE, "dsn": DSN}, ProviderContext(integration="reporting", environ={})
    )
    assert isinstance(sink, PgTableSink) and sink.object_type == "contact"
