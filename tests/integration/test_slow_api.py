"""One entity's API call hangs past the client's timeout; the other entities never pause.

On the real stack: Debezium records of 20 entities at about 100 changes/s while the
reference API holds one entity's write for 12 s (the REST client gives up after 10 s).
The results of the others keep coming (no gap over 1 s); the slow entity is parked and
ends with its latest row once the API answers again.
"""

from __future__ import annotations

import time
from typing import Any

from tests.integration.test_parking import created, insert, results

RATE = 100  # changes/s
SECONDS = 6.0
FLOWING = 20


def test_a_hanging_call_holds_only_its_own_entity(worker, db, watcher, external, tag):
    slow = insert(db, tag, "Slow")
    flowing = [insert(db, tag, f"Flow{i}") for i in range(FLOWING)]
    objects = created(watcher, slow, *flowing)
    external.fault(latency_ms=12_000, count=1, path=f"/api/v1/contacts/{objects[slow]}")
    db.execute("UPDATE contact SET last_name = 'Slow1' WHERE id = %s", (slow,))
    time.sleep(0.3)  # the slow write is on its way before the others start
    started = time.time() * 1000
    changes = _updates_at_rate(db, flowing, RATE, SECONDS)
    ended = started + SECONDS * 1000

    others = set(flowing)
    events = watcher.collect(
        lambda _t, e: e["entity_id"] == slow or e["entity_id"] in others,
        until=lambda found: results(found, slow) != [] and _ended(found, others) >= changes,
        timeout_s=90,
    )
    stamps = sorted(
        e["completed_ms"] for _t, e in events if e["entity_id"] != slow and e["kind"] == "result"
    )
    assert len(stamps) >= changes, f"{len(stamps)} results for {changes} changes"
    during = [s for s in stamps if started <= s <= ended]
    gaps = [b - a for a, b in zip([started, *during], [*during, ended], strict=True)]
    print(f"\nslow API: {changes} changes of {FLOWING} entities, longest gap {max(gaps):.0f} ms")
    assert max(gaps) < 1000, f"results paused for {max(gaps):.0f} ms while one call hung"
    # The slow entity timed out, was parked and retried: its row reached the API.
    assert [(action, attempts > 1) for action, attempts in results(events, slow)] == [
        ("update", True)
    ]
    (obj,) = [o for o in external.contacts(tag) if o["id"] == objects[slow]]
    assert obj["lastName"] == "Slow1"


def _updates_at_rate(db: Any, ids: list[str], rate: float, seconds: float) -> int:
    """Update the rows round-robin at ``rate`` per second; how many updates were made."""
    n, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        if n < elapsed * rate:
            db.execute("UPDATE contact SET phone = %s WHERE id = %s", (str(n), ids[n % len(ids)]))
            n += 1
        else:
            time.sleep(0.002)
    return n


def _ended(found: list[tuple[str, dict[str, Any]]], ids: set[str]) -> int:
    """Results of ``ids``' changes (a coalesced one too: it ends as a skip)."""
    return sum(1 for _t, e in found if e["kind"] == "result" and e["entity_id"] in ids)
