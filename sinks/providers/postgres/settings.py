"""What a ``postgres`` target is configured with: the table, its id column, the DSN as a secret."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from psycopg.conninfo import conninfo_to_dict
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from cdcsync.errors import ConfigurationError
from cdcsync.sinks.base import check_link_template

__all__ = ["PgTableSettings", "read_dsn", "recipient"]

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


def read_dsn(settings: PgTableSettings, environ: Mapping[str, str]) -> str:
    """The connection string: the ``dsn`` secret, else the variable ``dsn_env`` names."""
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


def recipient(dsn: str) -> str:
    """``postgresql://host:port/db`` of a DSN: where the data goes, without credentials."""
    params = conninfo_to_dict(dsn)  # PostgresConnection has refused an invalid one
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    if host.startswith("/"):  # a Unix socket directory
        host = "localhost"
    elif ":" in host and "," not in host:
        host = f"[{host}]"  # IPv6
    port = params.get("port") or 5432
    return f"postgresql://{host}:{port}/{params.get('dbname') or ''}"
