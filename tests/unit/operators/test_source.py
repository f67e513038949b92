"""Rows read from PostgreSQL look like Debezium's, value for value."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

from cdcsync.operators.source import debezium_row, debezium_value, read_envelope
from cdcsync.schemas.envelope import parse_change


def test_values_as_debeziums_json_converter_writes_them():
    aware = datetime(2026, 11, 23, 11, 14, 51, 763255, tzinfo=UTC)
    assert debezium_value(aware) == "2026-11-23T11:14:51.763255Z"  # seen on the real topic
    plus2 = datetime(2026, 11, 23, 13, 14, 51, 763255, tzinfo=timezone(timedelta(hours=2)))
    assert debezium_value(plus2) == "2026-11-23T11:14:51.763255Z"
    assert debezium_value(datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000
    assert debezium_value(date(1970, 1, 11)) == 10
    assert debezium_value(time(0, 0, 2, 5)) == 2_000_005
    assert debezium_value(Decimal("12.50")) == "12.50"
    u = uuid.uuid4()
    assert debezium_value(u) == str(u)
    assert debezium_value(b"\x00\x01") == "AAE="
    assert debezium_value({"a": 1}) == '{"a":1}'
    assert debezium_value(42) == 42
    assert debezium_value(None) is None


def test_read_envelope_is_an_r_event_the_agent_accepts():
    row = {"id": 42, "first_name": "Ada", "updated_at": datetime(2026, 1, 1, tzinfo=UTC)}
    envelope = read_envelope(row, schema="public", table="contact", origin="trigger", now_ms=5)
    assert envelope["op"] == "r" and envelope["before"] is None
    assert envelope["source"] | {} == {
        "version": "cdcsync",
        "connector": "cdcsync",
        "name": "cdcsync",
        "ts_ms": 5,
        "snapshot": "trigger",
        "schema": "public",
        "table": "contact",
    }
    assert envelope["after"] == debezium_row(row)
    change = parse_change(b'{"id":42}', json.dumps(envelope).encode(), key_field="id")
    assert change.entity_id == "42" and change.op == "read"
    assert change.committed_ms == 5
