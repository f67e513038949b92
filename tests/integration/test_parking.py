"""A failing entity is parked while the others flow, and retried in order, even across a crash."""

from __future__ import annotations

from typing import Any


def insert(db: Any, tag: str, name: str) -> str:
    row = db.execute(
        "INSERT INTO contact (first_name, last_name, email) VALUES (%s, 'P', %s) RETURNING id",
        (name, f"{name.lower()}.{tag}@example.org"),
    ).fetchone()
    return str(row[0])


def results(events: list[tuple[str, dict[str, Any]]], entity_id: str) -> list[tuple[str, int]]:
    return [
        (e["action"], e["attempts"])
        for _t, e in events
        if e["kind"] == "result" and e["entity_id"] == entity_id and e["action"] != "skip"
    ]


def settle(watcher: Any) -> None:
    """Let the change just made reach the agent alone (not coalesced with the next one)."""
    watcher.collect(lambda _t, e: False, timeout_s=0.5)


def created(watcher: Any, *ids: str) -> dict[str, str]:
    events = watcher.collect(
        lambda _t, e: e["entity_id"] in ids and e["action"] == "create", len(ids), timeout_s=60
    )
    assert len(events) == len(ids), events
    return {e["entity_id"]: e["external"]["id"] for _t, e in events}


def test_failing_entity_is_parked_and_retried_in_order_while_others_flow(
    worker, db, watcher, external, tag
):
    parked, flowing = insert(db, tag, "Parked"), insert(db, tag, "Flowing")
    objects = created(watcher, parked, flowing)
    # Only the parked entity's object fails, twice.
    external.fault(status=503, count=2, path=f"/api/v1/contacts/{objects[parked]}", method="PUT")
    db.execute("UPDATE contact SET last_name = 'First' WHERE id = %s", (parked,))
    settle(watcher)  # two updates in one batch would coalesce into one write
    db.execute("UPDATE contact SET last_name = 'Second' WHERE id = %s", (parked,))
    db.execute("UPDATE contact SET last_name = 'Meanwhile' WHERE id = %s", (flowing,))

    events = watcher.collect(
        lambda _t, e: e["entity_id"] in (parked, flowing),
        until=lambda found: len(results(found, parked)) == 2,
        timeout_s=60,
    )
    assert results(events, parked) == [("update", 3), ("update", 1)], events
    order = [e["entity_id"] for _t, e in events if e["kind"] == "result"]
    assert order.index(flowing) < order.index(parked), "the other entity waited for the parked one"
    by_id = {o["id"]: o for o in external.contacts(tag)}
    assert by_id[objects[parked]]["lastName"] == "Second"
    assert by_id[objects[flowing]]["lastName"] == "Meanwhile"


def test_parked_events_survive_a_worker_crash(worker, db, watcher, external, tag):
    entity_id = insert(db, tag, "Crash")
    external_id = created(watcher, entity_id)[entity_id]
    # Fail long enough for the crash to happen while the entity is parked.
    external.fault(
        status=503, count=3, path=f"/api/v1/contacts/{external_id}", method="PUT", retry_after=2
    )
    db.execute("UPDATE contact SET phone = '41' WHERE id = %s", (entity_id,))
    settle(watcher)
    db.execute("UPDATE contact SET phone = '42' WHERE id = %s", (entity_id,))
    watcher.collect(lambda _t, e: False, timeout_s=1.5)  # the first attempt fails meanwhile
    worker.stop(kill=True)
    worker.start()
    events = watcher.collect(
        lambda _t, e: e["entity_id"] == entity_id,
        until=lambda found: len(results(found, entity_id)) >= 2,
        timeout_s=90,
    )
    assert [a for a, _n in results(events, entity_id)] == ["update", "update"], events
    assert results(events, entity_id)[0][1] >= 2  # it was retried, not applied first time
    (obj,) = external.contacts(tag)
    assert obj["phone"] == "42"
