"""Column values as Debezium's JsonConverter writes them.

Rows read from PostgreSQL by cdcsync (the pull direction's fetches, triggers,
webhooks, reconcile) are converted to this form, so they map and hash exactly
like the rows Debezium delivers: the echo of a write is recognised, and a
re-check compares like with like.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any

__all__ = ["debezium_row", "debezium_value"]

_EPOCH = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)


def debezium_value(value: Any) -> Any:
    """One column value as Debezium writes it (``decimal.handling.mode=string``)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:  # timestamp without time zone: epoch microseconds
            return (value - _EPOCH) // timedelta(microseconds=1)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return (value - _EPOCH_DATE).days
    if isinstance(value, dtime):
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
        return micros + value.microsecond
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, timedelta):
        return value // timedelta(microseconds=1)
    if isinstance(value, list):  # PostgreSQL arrays arrive as JSON arrays
        return [debezium_value(v) for v in value]
    if isinstance(value, dict):  # json/jsonb arrive as their JSON text
        return json.dumps(value, separators=(",", ":"))
    return value


def debezium_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A whole row as Debezium's ``after`` block."""
    return {column: debezium_value(value) for column, value in row.items()}
