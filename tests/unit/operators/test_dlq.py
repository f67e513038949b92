"""Dead letters: filters, decoding the original record, display."""

from __future__ import annotations

from cdcsync.operators.dlq import Letter, RedriveReport, matches, original_bytes, show
from cdcsync.schemas.events import DeadLetter, RawRecord, SourcePosition


def letter(entity="contact", entity_id="7", raw=None) -> DeadLetter:
    return DeadLetter(
        entity=entity,
        entity_id=entity_id,
        reason="sink_permanent",
        error_type="SinkPermanentError",
        error="HTTP 422",
        source=SourcePosition(topic="cdcsync.contact", partition=1, offset=9),
        original=raw or RawRecord.from_bytes(b'{"id":7}', b'{"op":"c"}'),
        failed_ms=1,
    )


def test_filters():
    assert matches(letter())
    assert matches(letter(), entity="contact", ids={"7"})
    assert not matches(letter(), entity="order")
    assert not matches(letter(), ids={"8"})
    assert not matches(letter(entity_id=None), ids={"7"})


def test_original_bytes_round_trip_text_and_binary():
    for key, value in [(b'{"id":7}', b'{"op":"c"}'), (b"\xff\x00", b"\xfe"), (b"k", None)]:
        raw = RawRecord.from_bytes(key, value)
        assert original_bytes(raw) == (key, value)
    assert RawRecord.from_bytes(b"\xff", b"x").encoding == "base64"


def test_show_parses_a_json_original_and_names_the_position():
    shown = show(Letter(letter(), partition=2, offset=5, timestamp=0, redriven=True))
    assert shown["dead_letter_at"] == "2/5"
    assert shown["redriven"] is True
    assert shown["original"]["value"] == {"op": "c"}


def test_mark_is_the_redrive_header_value():
    assert Letter(letter(), partition=3, offset=12, timestamp=0).mark == "3/12"


def test_redrive_summary_groups_reasons():
    entry = Letter(letter(), 0, 0, 0)
    report = RedriveReport(sent=[entry], skipped=[(entry, "x"), (entry, "x"), (entry, "y")])
    assert report.summary() == "redrove 1 dead letters; left out: 2 x, 1 y"
