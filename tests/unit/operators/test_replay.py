"""Which records a replay copies, and how the copies are marked."""

from __future__ import annotations

from kafka.consumer.fetcher import ConsumerRecord

from cdcsync.operators.replay import ReplayReport, origin_of, replay_headers, select


def record(key=b'{"id":7}', value=b'{"op":"u"}', ts=1_000, headers=(), offset=3):
    return ConsumerRecord(
        "cdcsync.contact", 2, None, offset, ts, 0, key, value, list(headers), None, 0, 0, 0
    )


def test_a_change_in_range_is_replayed():
    assert select(record(), key_field="id", since_ms=1_000, until_ms=2_000) is None


def test_the_range_is_since_inclusive_until_exclusive():
    assert select(record(ts=999), key_field="id", since_ms=1_000) == "before --since"
    assert select(record(ts=2_000), key_field="id", until_ms=2_000) == "after --until"


def test_only_the_given_ids():
    assert select(record(), key_field="id", ids={"7"}) is None
    assert select(record(), key_field="id", ids={"8"}) == "another id"
    assert select(record(key=b"junk"), key_field="id", ids={"7"}) == "key is not an entity key"


def test_a_malformed_record_is_replayed_when_no_ids_are_given():
    assert select(record(key=b"junk", value=b"{nope"), key_field="id") is None


def test_tombstones_and_earlier_copies_are_left_out():
    assert select(record(value=None), key_field="id") == "tombstone"
    copy = record(headers=[("cdcsync-replay", b"cdcsync.contact/2/1")])
    assert select(copy, key_field="id") == "an earlier replay copy"


def test_copies_keep_headers_and_name_their_original():
    original = record(headers=[("__debezium.context.taskId", b"0")], offset=41)
    assert replay_headers(original) == [
        ("__debezium.context.taskId", b"0"),
        ("cdcsync-replay", b"cdcsync.contact/2/41"),
    ]


def test_report_summary_counts():
    report = ReplayReport(topic="t", scanned=5, replayed=3, ids={"1", "2"}, dry_run=True)
    report.by_partition.update({0: 2, 3: 1})
    report.skipped.update({"tombstone": 2})
    assert report.summary() == (
        "would replay 3 of 5 records of t (2 ids; p0: 2, p3: 1); left out: 2 tombstone"
    )


def test_origin_keeps_one_direction():
    external = record(value=b'{"origin":"external","entity_id":"7"}')
    assert origin_of(external.value) == "external"
    assert origin_of(b'{"op":"c"}') == origin_of(b"{nope") == "source"
    assert select(external, key_field="id", origin="external") is None
    assert select(external, key_field="id", origin="source") == "not from the source side"
    assert select(record(), key_field="id", origin="source") is None
