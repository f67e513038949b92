"""Trigger: sync one entity now (the "Sync now" button).

Reads the row from PostgreSQL and publishes a Debezium-shaped ``op: "r"``
envelope to the entity topic, keyed byte for byte like Debezium's key, so it
lands on the entity's partition and is processed in order with its other
changes. ``source.snapshot`` is ``"trigger"`` and the record carries a
``cdcsync-trigger`` header, so results and logs can tell it apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdcsync.operators.common import (
    TRIGGER_HEADER,
    OperatorError,
    entity_config,
    producer,
)
from cdcsync.operators.source import fetch_row, read_envelope, source_dsn, source_table
from cdcsync.schemas.config import Config
from cdcsync.schemas.envelope import encode_key

__all__ = ["Triggered", "trigger"]


@dataclass(frozen=True)
class Triggered:
    """Where the trigger record was written."""

    topic: str
    partition: int
    offset: int
    key: bytes


def trigger(
    config: Config, entity: str, entity_id: str, *, origin: str = "trigger", dsn: str | None = None
) -> Triggered:
    """Publish the current row of ``entity`` ``entity_id`` for the agent to sync."""
    cfg = entity_config(config, entity)
    schema, table = source_table(config, entity)
    row = fetch_row(dsn or source_dsn(config), schema, table, cfg.key, entity_id)
    if row is None:
        raise OperatorError(
            f"no row in {schema}.{table} with {cfg.key} = {entity_id}; "
            f"if it was deleted, its delete is synced from Debezium's event "
            f"(`cdcsync log --entity {entity} --id {entity_id}` shows it)"
        )
    key = encode_key(cfg.key, entity_id, key_type=cfg.key_type)
    value = json.dumps(
        read_envelope(row, schema=schema, table=table, origin=origin), separators=(",", ":")
    ).encode()
    prod = producer(config)
    try:
        meta = prod.send(
            cfg.topic, key=key, value=value, headers=[(TRIGGER_HEADER, origin.encode())]
        ).get(timeout=30)
    finally:
        prod.close()
    return Triggered(cfg.topic, meta.partition, meta.offset, key)
