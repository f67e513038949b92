"""Database to external API on the real stack: PostgreSQL → Debezium → Kafka → worker → API."""

from __future__ import annotations

import json
from typing import Any

from kafka import KafkaProducer

MAPPED = ("firstName", "lastName", "email", "phone")


def insert(db: Any, tag: str, n: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        row = db.execute(
            "INSERT INTO contact (first_name, last_name, email, phone, notes) "
            "VALUES (%s, %s, %s, %s, 'private') RETURNING id",
            (f"First{i}", f"Last{i}", f"p{i}.{tag}@example.org", f"+1 555 {i:04d}"),
        ).fetchone()
        ids.append(str(row[0]))
    return ids


def results_for(events: list[tuple[str, dict[str, Any]]], entity_id: str) -> list[str]:
    return [
        e["action"] for _t, e in events if e["kind"] == "result" and e["entity_id"] == entity_id
    ]


def test_insert_update_delete_reach_the_api_once_each(worker, db, watcher, external, tag):
    a, b, c = insert(db, tag, 3)
    db.execute("UPDATE contact SET last_name = 'Renamed' WHERE id = %s", (a,))
    db.execute("UPDATE contact SET notes = 'only an unmapped column' WHERE id = %s", (b,))
    db.execute("DELETE FROM contact WHERE id = %s", (c,))

    # 3 inserts + 2 updates + 1 delete + the delete's tombstone
    events = watcher.collect(lambda _t, e: e["entity_id"] in (a, b, c), 7, timeout_s=90)

    assert results_for(events, a) == ["create", "update"]
    assert results_for(events, b) == ["create", "skip"]
    assert results_for(events, c) == ["create", "delete", "skip"]
    skip_b = next(e for _t, e in events if e["entity_id"] == b and e["action"] == "skip")
    assert skip_b["api_calls"] == 0 and skip_b["reason"].startswith("no mapped field changed")
    for _t, e in events:
        assert e["kind"] == "result"
        assert e["source"]["topic"] == "cdcsync.contact"
        if e["action"] != "skip":
            assert 1 <= e["api_calls"] <= 3 and e["external"]["link"].startswith("http")

    rows = {
        str(r[0]): r
        for r in db.execute(
            "SELECT id, first_name, last_name, email, phone FROM contact WHERE email LIKE %s",
            (f"%.{tag}@example.org",),
        )
    }
    objects = external.contacts(tag)
    assert sorted(o["email"] for o in objects) == sorted(r[3] for r in rows.values())
    by_email = {o["email"]: o for o in objects}
    for _id, first, last, email, phone in rows.values():
        obj = by_email[email]
        assert {k: obj[k] for k in MAPPED} == {
            "firstName": first,
            "lastName": last,
            "email": email,
            "phone": phone,
        }
        assert "notes" not in obj and obj["rowId"]


def test_malformed_event_is_dead_lettered_and_the_next_change_syncs(
    worker, db, watcher, external, running_stack, config, tag
):
    (next_id,) = db.execute("SELECT nextval('contact_id_seq')").fetchone()
    producer = KafkaProducer(bootstrap_servers=running_stack.bootstrap_servers)
    # Byte-identical to Debezium's key, so it lands on the same partition, just before the row.
    key = json.dumps({"id": next_id}, separators=(",", ":")).encode()
    producer.send(config.entities["contact"].topic, key=key, value=b"{this is not json")
    producer.flush()
    producer.close()
    db.execute(
        "INSERT INTO contact (id, first_name, last_name, email) VALUES (%s, 'Dee', 'L', %s)",
        (next_id, f"dee.{tag}@example.org"),
    )

    events = watcher.collect(lambda _t, e: e["entity_id"] == str(next_id), 2, timeout_s=90)

    kinds = [(e["kind"], e.get("reason")) for _t, e in events]
    assert kinds[0] == ("dead_letter", "schema")
    letter = events[0][1]
    assert "not JSON" in letter["error"]
    assert letter["original"] == {
        "key": key.decode(),
        "value": "{this is not json",
        "encoding": "utf-8",
    }
    assert events[0][0] == config.topics.dead_letters
    assert kinds[1][0] == "result" and events[1][1]["action"] == "create"
    assert [o["firstName"] for o in external.contacts(tag)] == ["Dee"]


def test_worker_killed_mid_stream_leaves_no_duplicates(worker, db, watcher, external, tag):
    ids = insert(db, tag, 40)
    first = watcher.collect(lambda _t, e: e["entity_id"] in ids, 5, timeout_s=90)
    assert first, "the worker synced nothing before the kill"
    worker.stop(kill=True)
    more = insert(db, tag, 20, start=40)
    worker.start()

    everything = set(ids + more)
    before_kill = {e["entity_id"] for _t, e in first}

    def all_have_a_result(found: list) -> bool:
        return before_kill | {e["entity_id"] for _t, e in found} >= everything

    events = watcher.collect(
        lambda _t, e: e["entity_id"] in everything, until=all_have_a_result, timeout_s=120
    )
    assert all_have_a_result(events)
    assert all(
        e["kind"] == "result" and e["action"] in ("create", "update", "skip") for _t, e in events
    )
    objects = external.contacts(tag)
    emails = [o["email"] for o in objects]
    assert len(emails) == len(set(emails)) == 60
