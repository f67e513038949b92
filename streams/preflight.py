"""Start-up checks: every configuration problem reported before any event is consumed.

Each problem names the file, the path inside it and what to do. Targets are
checked against their provider's settings model; mapped columns against the
source table in PostgreSQL (when the database can be reached: an outage is
not a configuration error, and the worker retries its writes).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import psycopg

from cdcsync.errors import ConfigurationError
from cdcsync.mappers.base import Mapper
from cdcsync.schemas.config import Config, target_where
from cdcsync.sinks.targets import check_target

__all__ = [
    "check_columns",
    "check_idempotent_creates",
    "check_key_types",
    "check_store",
    "check_targets",
    "preflight",
]

log = logging.getLogger(__name__)


def check_targets(config: Config) -> list[str]:
    """Problems with the entities' targets: unknown provider, bad settings, misplaced secrets."""
    problems = []
    for name in config.entities:
        try:
            check_target(config.target(name), where=target_where(config, name))
        except ConfigurationError as exc:
            problems.append(str(exc))
    return problems


def _field_of(mapping: Mapping[str, Any], column: str) -> str:
    for field, spec in mapping.items():
        if spec == column or (isinstance(spec, Mapping) and spec.get("column") == column):
            return f"mapping.{field}"
    return "mapper"


def check_columns(
    config: Config, mappers: Mapping[str, Mapper], table_columns: Mapping[str, Collection[str]]
) -> list[str]:
    """Problems with mapped columns, given each source table's columns (``schema.table``)."""
    problems = []
    for name, entity in config.entities.items():
        if entity.source is None:
            continue
        table = f"{entity.source.schema_}.{entity.source.table}"
        where = f"entities.{name}"
        existing = table_columns.get(table)
        if existing is None:
            problems.append(
                f"{where}.source.table: {table} does not exist in the database; "
                "create it or fix the name"
            )
            continue
        mapper = mappers[name]
        wanted = {entity.key, *mapper.columns, *mapper.pull_columns}
        if entity.status_columns:
            wanted |= set(entity.status_columns.names())
        for column in sorted(wanted - set(existing)):
            problems.append(
                f"{where}.{_field_of(entity.mapping, column)}: column {column!r} does not exist "
                f"in {table} (it has {', '.join(sorted(existing))}); fix the mapping or add it"
            )
    return problems


#: Column types Debezium keys as a JSON number (``key_type: integer``).
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


def check_key_types(config: Config, column_types: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Problems with ``key_type``: it must say how Debezium writes the key column."""
    problems = []
    for name, entity in config.entities.items():
        if entity.source is None:
            continue
        table = f"{entity.source.schema_}.{entity.source.table}"
        column_type = column_types.get(table, {}).get(entity.key)
        if column_type is None:
            continue  # check_columns reports a missing table or column
        wanted = "integer" if column_type in INTEGER_TYPES else "text"
        if entity.key_type != wanted:
            json_type = "a number" if wanted == "integer" else "a string"
            problems.append(
                f"entities.{name}.key_type: the key column {entity.key!r} of {table} is "
                f"{column_type}, which Debezium keys as {json_type}; set key_type: {wanted}"
            )
    return problems


def check_idempotent_creates(config: Config) -> list[str]:
    """Warn (once each, at start-up) about entities whose create a retry may duplicate.

    A create whose answer was lost (a timeout) is retried; without a ``natural_key`` to
    look the object up first, or an ``idempotency_header`` the API honours, that retry
    makes a second object. Returns the entities warned about.
    """
    warned = []
    for name, entity in config.entities.items():
        if not entity.enabled or entity.natural_key:
            continue
        if config.target(name).settings.get("idempotency_header"):
            continue
        log.warning(
            "%s: no natural_key and no idempotency_header: a create retried after a timeout "
            "may make a second external object (set natural_key, or the rest setting "
            "idempotency_header if the API takes an idempotency key)",
            name,
        )
        warned.append(name)
    return warned


def _table_columns(dsn: str, tables: list[tuple[str, str]]) -> dict[str, dict[str, str]]:
    """Each table's columns and their types, by ``schema.table``."""
    found: dict[str, dict[str, str]] = {}
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        for schema, table in tables:
            rows = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (schema, table),
            ).fetchall()
            if rows:
                found[f"{schema}.{table}"] = {r[0]: r[1] for r in rows}
    return found


def check_store(config: Config) -> list[str]:
    """Problems with ``app.store``: a scheme Faust has no store for, or a missing extra."""
    scheme = config.app.store.partition("://")[0]
    if scheme not in ("memory", "rocksdb"):
        return [f"app.store: {config.app.store!r} is not memory:// or rocksdb://"]
    if scheme == "rocksdb" and importlib.util.find_spec("rocksdict") is None:
        return [
            "app.store: rocksdb:// needs the rocksdict package: "
            "pip install 'cdcsync[rocksdb]' (or set store: memory://)"
        ]
    return []


def preflight(config: Config, path: Path | None, mappers: Mapping[str, Mapper]) -> None:
    """Raise one ``ConfigurationError`` listing every problem found, or return."""
    problems = check_targets(config) + check_store(config)
    check_idempotent_creates(config)
    tables = [(e.source.schema_, e.source.table) for e in config.entities.values() if e.source]
    if tables:
        try:
            columns = _table_columns(config.database.url(), tables)
        except psycopg.OperationalError as exc:
            log.warning("could not check mapped columns: database unreachable (%s)", exc)
        else:
            problems += check_columns(config, mappers, columns)
            problems += check_key_types(config, columns)
    if problems:
        where = f"{path}: " if path else ""
        raise ConfigurationError(
            f"{where}{len(problems)} problem(s) in the configuration:\n"
            + "\n".join(f"  {p}" for p in problems)
        )
