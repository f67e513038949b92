"""The incremental-snapshot signal and recognising its records."""

from __future__ import annotations

import json
import uuid

import pytest

from cdcsync.operators.common import OperatorError
from cdcsync.operators.resync import ResyncReport, is_snapshot_record, snapshot_signal


def test_full_snapshot_signal():
    signal_id, kind, data = snapshot_signal("public.contact")
    uuid.UUID(signal_id)
    assert kind == "execute-snapshot"
    assert json.loads(data) == {"data-collections": ["public.contact"], "type": "incremental"}


def test_filtered_snapshot_signal_uses_additional_conditions():
    _id, _kind, data = snapshot_signal("public.contact", "email LIKE '%@x.org'")
    assert json.loads(data) == {
        "data-collections": ["public.contact"],
        "type": "incremental",
        "additional-conditions": [
            {"data-collection": "public.contact", "filter": "email LIKE '%@x.org'"}
        ],
    }


def test_a_signal_too_long_for_the_table_is_refused():
    with pytest.raises(OperatorError, match="shorten --filter"):
        snapshot_signal("public.contact", "id IN (" + ",".join(["1"] * 1200) + ")")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"op":"r","source":{"snapshot":"incremental"}}', True),
        (b'{"op":"r","source":{"snapshot":"true"}}', False),
        (b'{"op":"u","source":{"snapshot":"incremental"}}', False),
        (b'{"op":"r","source":{"snapshot":"trigger"}}', False),
        (b"not json", False),
        (None, False),
        (b"[]", False),
    ],
)
def test_is_snapshot_record(value, expected):
    assert is_snapshot_record(value) is expected


def test_report_is_done_when_every_expected_row_arrived():
    report = ResyncReport("s", "public.contact", expected={"1", "2"}, arrived={"1"})
    assert not report.done
    assert report.summary().endswith("1 of 2 rows on the topic")
    report.arrived.add("2")
    assert report.done
