"""The problems index: classify, filter, page, count, over raw state dicts (pure)."""

from __future__ import annotations

import pytest

from cdcsync.operators.dlq import Letter
from cdcsync.schemas.events import DeadLetter, RawRecord, SourcePosition
from cdcsync.streams.pages.index import (
    Filters,
    count_states,
    find_problems,
    kind_of_letter,
    kind_of_state,
)

NOW = 1_700_000_000_000
TABLE = {
    "1": {"status": "synced", "external_id": "x-1", "updated_ms": NOW},
    "2": {"status": "retrying", "external_id": "x-2", "parked": [{"received_ms": NOW - 9}],
          "attempts": 2, "last_error": "HTTP 503", "updated_ms": NOW - 5},
    "3": {"status": "retrying", "hold": "loop_suspected", "parked": [{}, {}],
          "updated_ms": NOW - 1},
    "4": {"status": "permanently_failed", "last_error": "HTTP 422", "updated_ms": NOW - 3_600_000},
    "5": {"status": "conflict", "external_id": "x-5", "updated_ms": NOW - 2},
    "6": None,
}  # fmt: skip


def _letter(entity_id: str, reason: str, failed_ms: int) -> Letter:
    position = SourcePosition(topic="t", partition=0, offset=1)
    dead = DeadLetter(entity="contact", entity_id=entity_id, reason=reason, error_type="E",
                      error="bad", source=position, original=RawRecord(key=None, value=None),
                      failed_ms=failed_ms)  # fmt: skip
    return Letter(dead, 2, int(entity_id), 0)


LETTERS = [_letter("7", "mapping", NOW - 4), _letter("8", "sink_transient", NOW - 6)]


def _ids(f: Filters) -> list[str]:
    found = find_problems({"contact": TABLE}, LETTERS, f, integration_of={"contact": "crm"})
    return [p.entity_id for p in found]


def test_every_problem_newest_first_with_dead_letters() -> None:
    assert _ids(Filters()) == ["3", "5", "7", "2", "8", "4"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(status="retrying"), ["3", "2"]),
        (Filters(status="dead_letter"), ["7", "8"]),
        (Filters(kind="loop"), ["3"]),
        (Filters(kind="transient"), ["2", "8"]),
        (Filters(kind="config"), ["7"]),
        (Filters(kind="permanent"), ["4"]),
        (Filters(q="x-5"), ["5"]),  # the external id, exactly
        (Filters(q="2"), ["2"]),  # a part of the entity id
        (Filters(since_ms=NOW - 60_000), ["3", "5", "7", "2", "8"]),
        (Filters(until_ms=NOW - 60_000), ["4"]),
        (Filters(integration="other"), []),
        (Filters(entity="contact", integration="crm", status="conflict"), ["5"]),
    ],
)
def test_filters(filters: Filters, expected: list[str]) -> None:
    assert _ids(filters) == expected


def test_rows_carry_what_the_columns_show() -> None:
    found = find_problems({"contact": TABLE}, LETTERS, Filters(q="2"), integration_of={})
    [row] = found
    assert (row.reason, row.attempts, row.first_ms, row.last_ms) == (
        "HTTP 503",
        2,
        NOW - 9,
        NOW - 5,
    )
    assert row.ref == "contact/2"
    [letter] = find_problems({"contact": TABLE}, LETTERS, Filters(kind="config"), integration_of={})
    assert letter.ref == "dlq/2/7" and letter.reason == "mapping: bad"


def test_query_filters_read_times_and_round_trip() -> None:
    f = Filters.from_query({"since": "-1h", "kind": "loop", "page": "x"}, now_ms=NOW)
    assert (f.since_ms, f.kind, f.page) == (NOW - 3_600_000, "loop", 1)
    assert f.query(page=2) == {"kind": "loop", "since": "-1h", "page": "2"}
    with pytest.raises(ValueError, match="since"):
        Filters.from_query({"since": "last tuesday"})


def test_kinds_and_counts() -> None:
    assert kind_of_state({"status": "conflict"}) == "conflict"
    assert kind_of_letter("configuration") == "config"
    assert kind_of_letter("cancelled") == "permanent"
    counts = count_states(TABLE)
    assert (counts.synced, counts.retrying, counts.permanently_failed, counts.conflict) == (
        1,
        2,
        1,
        1,
    )
    assert (counts.pending, counts.loop, counts.last_error) == (3, 1, "HTTP 503")
