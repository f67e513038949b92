"""The source side of an entity: its PostgreSQL table, rows read like Debezium reads them.

``trigger``, ``resync`` and webhooks read rows themselves; the records they
publish must look like Debezium's, value for value, or the payload hash would
differ from the one Debezium's own events produce and cause needless updates.
Debezium's JsonConverter (schemas disabled, ``decimal.handling.mode=string``)
writes ``timestamptz`` as an ISO string in UTC, ``timestamp`` as epoch
microseconds, ``date`` as days since the epoch, ``time`` as microseconds since
midnight, ``numeric`` as a string, ``bytea`` as base64 and ``uuid``/``json`` as
text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from cdcsync.operators.common import OperatorError
from cdcsync.schemas.config import Config
from cdcsync.schemas.values import debezium_row, debezium_value

__all__ = [
    "debezium_row",
    "debezium_value",
    "fetch_row",
    "fetch_row_async",
    "read_envelope",
    "source_dsn",
    "source_table",
]


def source_table(config: Config, entity: str) -> tuple[str, str]:
    """``(schema, table)`` holding the entity's rows.

    The entity's ``source`` entry when configured, else the entity's name in
    schema ``public`` (Debezium's topic ``<topic.prefix>.<table>`` routed to the
    entity topic).
    """
    source = config.entities[entity].source
    if source is not None:
        return source.schema_, source.table
    return "public", entity


def source_dsn(config: Config) -> str:
    """libpq connection string of the source database (``database.url_env``, else the
    local stack's); a secret, never logged.
    """
    return config.database.url()


def read_envelope(
    row: Mapping[str, Any], *, schema: str, table: str, origin: str, now_ms: int | None = None
) -> dict[str, Any]:
    """A Debezium-shaped ``op: "r"`` envelope for ``row``; ``source.snapshot`` = ``origin``.

    The agent treats ``r`` as an upsert; ``origin`` (``trigger``, ``webhook``) tells
    consumers and logs who asked for it.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return {
        "before": None,
        "after": debezium_row(row),
        "source": {
            "version": "cdcsync",
            "connector": "cdcsync",
            "name": "cdcsync",
            "ts_ms": now_ms,
            "snapshot": origin,
            "schema": schema,
            "table": table,
        },
        "op": "r",
        "ts_ms": now_ms,
    }


def _row_query(schema: str, table: str, key: str) -> Any:
    from psycopg import sql

    return sql.SQL("SELECT * FROM {t} WHERE {k} = %s").format(
        t=sql.Identifier(schema, table), k=sql.Identifier(key)
    )


def _key_param(entity_id: str) -> Any:
    return int(entity_id) if entity_id.lstrip("-").isdigit() else entity_id


def fetch_row(dsn: str, schema: str, table: str, key: str, entity_id: str) -> dict[str, Any] | None:
    """The row whose ``key`` column equals ``entity_id``, or ``None``."""
    import psycopg
    from psycopg.rows import dict_row

    try:
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            return conn.execute(_row_query(schema, table, key), (_key_param(entity_id),)).fetchone()
    except psycopg.OperationalError as exc:
        raise OperatorError(
            f"cannot reach PostgreSQL ({exc}); start the stack with `cdcsync local up`"
        ) from exc
    except psycopg.Error as exc:
        raise OperatorError(
            f"cannot read {schema}.{table} where {key} = {entity_id}: {exc}"
        ) from exc


async def fetch_row_async(
    dsn: str, schema: str, table: str, key: str, entity_id: str
) -> dict[str, Any] | None:
    """:func:`fetch_row` for the worker's event loop (webhooks)."""
    import psycopg
    from psycopg.rows import dict_row

    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, row_factory=dict_row
    ) as conn:
        cursor = await conn.execute(_row_query(schema, table, key), (_key_param(entity_id),))
        return await cursor.fetchone()
