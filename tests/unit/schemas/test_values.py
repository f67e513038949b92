import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from cdcsync.schemas.values import debezium_row, debezium_value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC), "2026-01-02T03:04:05.600000Z"),
        (datetime(1970, 1, 1, 0, 0, 1), 1_000_000),  # timestamp: epoch micros
        (date(1970, 1, 11), 10),  # date: days since epoch
        (time(0, 1, 2), 62_000_000),
        (Decimal("12.50"), "12.50"),  # decimal.handling.mode=string
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (b"\x00\x01", "AAE="),
        (timedelta(seconds=1), 1_000_000),
        (["a", "b"], ["a", "b"]),  # arrays stay arrays
        ([date(1970, 1, 2)], [1]),
        ({"k": [1, 2]}, '{"k":[1,2]}'),  # json/jsonb as text
        ("text", "text"),
        (None, None),
        (7, 7),
    ],
)
def test_values_take_debeziums_json_forms(value, expected):
    assert debezium_value(value) == expected


def test_rows_convert_every_column():
    assert debezium_row({"id": 1, "d": date(1970, 1, 3)}) == {"id": 1, "d": 2}
