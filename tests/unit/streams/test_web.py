"""The pure parts of the worker's endpoints: webhook bodies and consumer lag."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.types import TP

from cdcsync.errors import SchemaError
from cdcsync.streams.web import consumer_lag, entity_id_from_body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"id": 42}', "42"),
        (b'{"id": "A-1"}', "A-1"),
        (b'{"type": "contact.updated", "data": {"id": 7}}', "7"),
    ],
)
def test_entity_id_from_body(body, expected):
    assert entity_id_from_body(body, "id") == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"nope", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"external_id": "x"}', "names no 'id'"),
        (b'{"id": true}', "string or an integer"),
        (b'{"id": {"a": 1}}', "string or an integer"),
    ],
)
def test_bodies_without_an_id_are_refused(body, reason):
    with pytest.raises(SchemaError, match=reason):
        entity_id_from_body(body, "id")


def test_consumer_lag_counts_from_the_last_read_or_committed_offset():
    a, b, c, d = (
        TP("cdcsync.contact", 0),
        TP("cdcsync.contact", 1),
        TP("other", 0),
        TP("cdcsync.contact", 2),
    )
    highwaters = {a: 10, b: 5, c: 100, d: None}
    consumer = SimpleNamespace(
        assignment=lambda: [a, b, c, d],
        highwater=lambda t: highwaters[t],
        _read_offset={a: 6},
        _committed_offset={b: 2},
    )
    app = SimpleNamespace(consumer=consumer)
    assert consumer_lag(app, {"cdcsync.contact"}) == {
        ("cdcsync.contact", 0): 3,
        ("cdcsync.contact", 1): 3,
    }
