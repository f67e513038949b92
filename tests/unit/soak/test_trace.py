"""The soak's history lines: which entity a record is about and what it says."""

from __future__ import annotations

import json

from cdcsync.soak.trace import describe


def _j(value: object) -> bytes:
    return json.dumps(value).encode()


def test_each_kind_of_record_names_its_entity_and_what_it_holds() -> None:
    key = _j({"id": 3})
    row = {"op": "u", "after": {"id": 3, "notes": "edit9"}, "source": {"ts_ms": 1700}}
    assert describe("record", key, _j(row)) == ("3", "ROW op=u notes='edit9' committed=1700")
    ext = {"origin": "external", "change": "upsert", "version": "v2", "fields": {"notes": "e"}}
    assert describe("record", key, _j(ext)) == ("3", "EXT upsert version=v2 notes='e'")
    result = {
        "kind": "result",
        "entity_id": "3",
        "origin": "external",
        "action": "pull",
        "reason": "external object changed",
        "source": {"offset": 41},
    }
    assert describe("outcome", None, _j(result)) == (
        "3",
        "  -> @41 external pull: external object changed",
    )
    state = {
        "status": "synced",
        "last_offset": 41,
        "row_id": "v2",
        "payload_hash": "abcdef123",
        "pulled_ms": 5,
        "source_pending": False,
        "superseded": ["v1"],
        "parked": [],
    }
    entity, line = describe("state", _j("3"), _j(state))
    assert entity == "3"
    assert "row=v2 hash=abcdef12 pulled=5" in line and "superseded=['v1']" in line


def test_malformed_records_and_tombstones_are_named_not_raised() -> None:
    assert describe("record", _j({"id": 3}), b"this is not json {") == ("3", "malformed record")
    assert describe("record", b"\xff", None) == (None, "tombstone")
    assert describe("state", _j("7"), None) == ("7", "STATE tombstone")
