"""The real local stack: `up` brings PostgreSQL, Kafka, Connect and Debezium up end to end.

Leaves the stack running: other integration tests reuse it.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition

from cdcsync.connect.register import connector_files
from cdcsync.stack import TopicSpec, status, up
from cdcsync.stack.settings import StackSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOPIC = "cdcsync.contact"


def _json(raw: bytes | None) -> Any:
    return None if raw is None else json.loads(raw)


def _up(settings: StackSettings, lines: list[str]) -> float:
    started = time.monotonic()
    up(
        sql_files=[REPO / "demo" / "schema.sql"],
        topics=[TopicSpec(TOPIC, 4)],
        connector_files=connector_files(),
        settings=settings,
        progress=lines.append,
    )
    return time.monotonic() - started


def test_up_streams_an_insert_and_reuses_a_running_stack() -> None:
    settings = StackSettings()
    first: list[str] = []
    _up(settings, first)
    print("\n".join(first))
    assert all(part.running for part in status(settings=settings)), status(settings=settings)

    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        key_deserializer=_json,
        value_deserializer=_json,
        consumer_timeout_ms=1000,
    )
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(4)]
        assert consumer.partitions_for_topic(TOPIC) == set(range(4))
        consumer.assign(partitions)
        for tp, offset in consumer.end_offsets(partitions).items():
            consumer.seek(tp, offset)

        email = f"it-{uuid.uuid4().hex[:12]}@example.test"
        with psycopg.connect(settings.pg_dsn()) as conn:
            row = conn.execute(
                "INSERT INTO public.contact (first_name, last_name, email) "
                "VALUES ('Ada', 'Lovelace', %s) RETURNING id",
                [email],
            ).fetchone()
        assert row is not None
        contact_id = row[0]

        found = None
        deadline = time.monotonic() + 60
        while found is None and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    after = (record.value or {}).get("after") or {}
                    if after.get("email") == email:
                        found = record
        assert found is not None, f"no Debezium event for {email} on {TOPIC} within 60s"
    finally:
        consumer.close()

    assert found.key == {"id": contact_id}
    assert found.value["op"] == "c"
    assert found.value["after"]["email"] == email
    assert found.value["after"]["first_name"] == "Ada"
    assert found.value["source"]["table"] == "contact"

    again: list[str] = []
    elapsed = _up(settings, again)
    print("\n".join(again))
    assert elapsed < 5, f"a second up() should only check health, took {elapsed:.1f}s"
    for part in ("postgres", "kafka", "connect"):
        assert any(line.split("] ", 1)[1].startswith(f"{part}: reusing") for line in again), again
    assert not [line for line in again if "starting" in line or "fetching" in line], again
