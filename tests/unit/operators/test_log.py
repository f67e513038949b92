"""The execution log: parsing, filtering and rows."""

from __future__ import annotations

from cdcsync.operators.log import entry_from, rows, select
from cdcsync.schemas.events import ExternalRef, RawRecord
from cdcsync.testing.samples import dead_letter, sync_result

RESULT = sync_result(
    op="update",
    action="update",
    reason="mapped fields changed",
    external=ExternalRef(type="contact", id="x1", link="http://api/ui/contacts/x1"),
    received_ms=100,
    completed_ms=200,
    latency_ms=150.0,
)
LETTER = dead_letter(entity_id="8", original=RawRecord.from_bytes(b"k", b"v"), failed_ms=300)


def test_entries_from_both_topics():
    result = entry_from(RESULT.model_dump_json().encode())
    letter = entry_from(LETTER.model_dump_json().encode())
    assert result is not None and result.time_ms == 200 and result.action == "update"
    assert letter is not None and letter.time_ms == 300 and letter.action == "dead_letter"
    for junk in (None, b"", b"nope", b"[]", b'{"kind":"other"}', b'{"kind":"result"}'):
        assert entry_from(junk) is None


def test_filters_combine():
    result = entry_from(RESULT.model_dump_json().encode())
    assert result is not None
    assert select(result)
    assert select(result, entity="contact", ids={"7"}, actions={"update"}, since_ms=200)
    assert not select(result, entity="order")
    assert not select(result, ids={"8"})
    assert not select(result, actions={"dead_letter"})
    assert not select(result, since_ms=201)


def test_rows_show_link_or_error():
    entries = [
        entry_from(RESULT.model_dump_json().encode()),
        entry_from(LETTER.model_dump_json().encode()),
    ]
    first, second = rows([e for e in entries if e])
    assert first[1:5] == ("contact", "7", "update", "mapped fields changed")
    assert first[5] == "http://api/ui/contacts/x1"
    assert first[6] == "cdcsync.contact[1]@9"
    assert second[3] == "dead_letter" and second[5] == "SchemaError: value is not JSON"
