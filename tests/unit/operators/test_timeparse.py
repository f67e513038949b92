"""Times as operators type them."""

from __future__ import annotations

from datetime import datetime

import pytest

from cdcsync.operators.common import OperatorError
from cdcsync.operators.timeparse import format_ms, parse_time

NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-30s", NOW - 30_000),
        ("-15m", NOW - 15 * 60_000),
        ("-2h", NOW - 2 * 3_600_000),
        ("-1d", NOW - 86_400_000),
        ("-1w", NOW - 7 * 86_400_000),
        ("-1.5h", NOW - 5_400_000),
        (" -5M ", NOW - 5 * 60_000),
    ],
)
def test_relative_times_count_back_from_now(text, expected):
    assert parse_time(text, now_ms=NOW) == expected


def test_iso_with_an_offset_is_exact():
    assert parse_time("2023-11-14T22:13:20Z") == NOW
    assert parse_time("2023-11-15T00:13:20+02:00") == NOW
    assert parse_time("2023-11-14T22:13:20.250+00:00") == NOW + 250


def test_iso_without_an_offset_is_local_time():
    expected = int(datetime(2024, 3, 1, 12, 0).astimezone().timestamp() * 1000)
    assert parse_time("2024-03-01T12:00") == expected
    assert parse_time("2024-03-01") == int(datetime(2024, 3, 1).astimezone().timestamp() * 1000)


@pytest.mark.parametrize("text", ["yesterday", "15m", "-15x", "", "2024-13-01"])
def test_unreadable_times_say_which_forms_work(text):
    with pytest.raises(OperatorError, match="ISO-8601"):
        parse_time(text, now_ms=NOW)


def test_format_ms_is_utc_with_milliseconds():
    assert format_ms(NOW + 7) == "2023-11-14 22:13:20.007Z"
    assert format_ms(None) == "-"
