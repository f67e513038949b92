"""The soak's seeded workload."""

from __future__ import annotations

import pytest

from cdcsync.soak.workload import build_workload, counts


def test_the_same_seed_makes_the_same_steps() -> None:
    one = build_workload(changes=3000, ids=300, two_way=30, seed=5)
    assert one == build_workload(changes=3000, ids=300, two_way=30, seed=5)
    assert one != build_workload(changes=3000, ids=300, two_way=30, seed=6)


def test_changes_count_everything_but_malformed_records_in_the_shares_asked() -> None:
    c = counts(build_workload(changes=20_000, ids=1000, two_way=100))
    assert c["changes"] == 20_000
    assert c["inserts"] + c["updates"] + c["deletes"] + c["external_edits"] == 20_000
    assert 150 <= c["malformed"] <= 250  # 1%
    assert 300 <= c["external_edits"] <= 500  # 2%
    assert c["updates"] > 10 * c["deletes"] > 0


def test_rows_change_only_when_they_can_and_two_way_ids_only_externally() -> None:
    steps = build_workload(changes=10_000, ids=500, two_way=50)
    live: set[int] = set()
    for s in steps:
        assert 1 <= s.id <= 500
        if s.op == "c":
            assert s.id not in live
            live.add(s.id)
        elif s.op in ("u", "d"):
            assert s.id in live and s.id > 50, s
            if s.op == "d":
                live.remove(s.id)
        elif s.op == "x":
            assert s.id <= 50 and s.id in live and s.notes
    assert set(range(1, 51)) <= live
    assert any(s.op == "c" for s in steps[500:])  # a deleted id comes back


def test_two_way_ids_must_fit_in_the_seed() -> None:
    with pytest.raises(ValueError):
        build_workload(changes=100, ids=100, two_way=90)
