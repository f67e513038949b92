"""Resync: a Debezium incremental snapshot of an entity's table, watched until done.

The snapshot is asked for through the connector's signal table (PostgreSQL is
written, Debezium reads the row from the log, the worker never stops). Its
rows arrive on the entity topic as ``op: "r"`` with ``source.snapshot:
"incremental"``; the command first counts the rows the filter matches, then
counts those ids as their snapshot records arrive.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from cdcsync.errors import SchemaError
from cdcsync.operators.common import OperatorError, consumer, entity_config, partitions
from cdcsync.operators.source import source_dsn, source_table
from cdcsync.schemas.config import Config
from cdcsync.schemas.envelope import parse_key

__all__ = ["SIGNAL_TABLE", "ResyncReport", "is_snapshot_record", "resync", "snapshot_signal"]

#: The connector's ``signal.data.collection`` (connect/cdcsync-postgres.json).
SIGNAL_TABLE = ("public", "debezium_signal")
_SIGNAL_DATA_MAX = 2048  # varchar(2048) in demo/schema.sql


def snapshot_signal(collection: str, sql_filter: str | None = None) -> tuple[str, str, str]:
    """The signal row ``(id, type, data)`` asking for an incremental snapshot.

    Debezium 3.2's ``execute-snapshot`` data: ``data-collections`` (``schema.table``),
    ``type`` ``incremental``, and optional ``additional-conditions``, each a
    ``data-collection`` and a ``filter`` appended as a ``WHERE`` clause.
    """
    data: dict[str, Any] = {"data-collections": [collection], "type": "incremental"}
    if sql_filter and sql_filter.strip():
        data["additional-conditions"] = [{"data-collection": collection, "filter": sql_filter}]
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > _SIGNAL_DATA_MAX:
        raise OperatorError(
            f"the signal is {len(text)} characters; the signal table holds {_SIGNAL_DATA_MAX}: "
            "shorten --filter"
        )
    return str(uuid.uuid4()), "execute-snapshot", text


def is_snapshot_record(value: bytes | None) -> bool:
    """Whether a raw entity-topic value is a row of an incremental snapshot."""
    if not value:
        return False
    try:
        data = json.loads(value)
    except ValueError:
        return False
    if not isinstance(data, dict) or data.get("op") != "r":
        return False
    source = data.get("source")
    return isinstance(source, dict) and source.get("snapshot") == "incremental"


@dataclass
class ResyncReport:
    """The snapshot asked for and how much of it has arrived."""

    signal_id: str
    collection: str
    expected: set[str] = field(default_factory=set)
    arrived: set[str] = field(default_factory=set)
    waited: bool = True

    @property
    def done(self) -> bool:
        """Every matching row has arrived on the topic."""
        return self.expected <= self.arrived

    def summary(self) -> str:
        """One line for the terminal."""
        base = f"incremental snapshot {self.signal_id} of {self.collection}"
        if not self.waited:
            return f"{base}: signalled for {len(self.expected)} rows (not waiting)"
        got = len(self.expected & self.arrived)
        return f"{base}: {got} of {len(self.expected)} rows on the topic"


def _matching_ids(dsn: str, schema: str, table: str, key: str, sql_filter: str | None) -> set[str]:
    import psycopg
    from psycopg import sql

    query = sql.SQL("SELECT {key} FROM {table}").format(
        key=sql.Identifier(key), table=sql.Identifier(schema, table)
    )
    if sql_filter and sql_filter.strip():
        # The filter is the operator's own SQL, as Debezium will run it: checked here first.
        query = sql.SQL("{q} WHERE {f}").format(q=query, f=sql.SQL(sql_filter))  # type: ignore[arg-type]
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return {str(row[0]) for row in conn.execute(query)}
    except psycopg.OperationalError as exc:
        raise OperatorError(
            f"cannot reach PostgreSQL ({exc}); start the stack with `cdcsync local up`"
        ) from exc
    except psycopg.Error as exc:
        raise OperatorError(
            f"the filter does not work on {schema}.{table}: {exc}".strip()
            + "; --filter takes a SQL condition such as \"email LIKE '%@example.org'\""
        ) from exc


def _send_signal(dsn: str, signal: tuple[str, str, str]) -> None:
    import psycopg
    from psycopg import sql

    insert = sql.SQL("INSERT INTO {t} (id, type, data) VALUES (%s, %s, %s)").format(
        t=sql.Identifier(*SIGNAL_TABLE)
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(insert, signal)


def resync(
    config: Config,
    entity: str,
    *,
    sql_filter: str | None = None,
    wait: bool = True,
    timeout_s: float = 600.0,
    on_plan: Callable[[int], Callable[[int], None]] | None = None,
    dsn: str | None = None,
) -> ResyncReport:
    """Signal an incremental snapshot of ``entity`` (optionally filtered) and, with
    ``wait``, follow the entity topic until every matching row has arrived.

    ``on_plan`` gets the number of matching rows and returns a progress callback.
    """
    cfg = entity_config(config, entity)
    schema, table = source_table(config, entity)
    collection = f"{schema}.{table}"
    dsn = dsn or source_dsn(config)
    expected = _matching_ids(dsn, schema, table, cfg.key, sql_filter)
    signal = snapshot_signal(collection, sql_filter)
    report = ResyncReport(signal_id=signal[0], collection=collection, expected=expected)
    if not expected:
        report.waited = False
        return report
    if not wait:
        _send_signal(dsn, signal)
        report.waited = False
        return report

    cons = consumer(config)
    try:
        # Position at the end *before* signalling, so no snapshot record is missed.
        parts = [TopicPartition(cfg.topic, p) for p in partitions(cons, cfg.topic)]
        cons.assign(parts)
        for tp, end in cons.end_offsets(parts).items():
            cons.seek(tp, end)
        advance = on_plan(len(expected)) if on_plan else (lambda _n: None)
        _send_signal(dsn, signal)
        deadline = time.monotonic() + timeout_s
        while not report.done and time.monotonic() < deadline:
            for records in cons.poll(timeout_ms=500).values():
                for record in records:
                    if not is_snapshot_record(record.value):
                        continue
                    try:
                        entity_id = parse_key(record.key, key_field=cfg.key)
                    except SchemaError:
                        continue
                    if entity_id in expected and entity_id not in report.arrived:
                        report.arrived.add(entity_id)
                        advance(1)
    finally:
        cons.close()
    return report
