"""The soak's checks over what it collected: each passes on a clean run and fails, with its
evidence, on the fault it is there to catch."""

from __future__ import annotations

from typing import Any

from cdcsync.soak.checks import Check, Collected, Outcome, lost_edits, run_checks


def _row(i: int, notes: str = "") -> dict[str, Any]:
    return {"id": i, "firstName": f"F{i}", "lastName": f"L{i}", "email": f"soak{i}@example.org",
            "phone": "+41 1", "notes": notes}  # fmt: skip


def _clean(**changes: Any) -> Collected:
    rows = {r["email"]: r for r in (_row(1, "edit9"), _row(2), _row(3))}
    objects = [{**{k: v for k, v in r.items() if k != "id"}, "id": f"x{r['id']}",
                "rowId": "r"} for r in rows.values()]  # fmt: skip
    outcomes = [Outcome("result", (0, 0), "1", "create"), Outcome("result", (0, 1), "2", "create"),
                Outcome("dead_letter", (1, 0), "3", "malformed", "ValueError: not json"),
                Outcome("result", (1, 1), "3", "create")]  # fmt: skip
    base = Collected(rows=rows, objects=objects, edits={1: "edit9"},
                     records={(0, 0), (0, 1), (1, 0), (1, 1)}, outcomes=outcomes,
                     malformed={(1, 0)}, quiet_writes={"api": 0, "db": 0}, quiet_s=20,
                     peak_rss_mb={"worker-0": 150.0, "worker-1": 160.0})  # fmt: skip
    for k, v in changes.items():
        setattr(base, k, v)
    return base


def _by_name(c: Collected) -> dict[str, Check]:
    return {check.name: check for check in run_checks(c)[0]}


def _failed(c: Collected) -> dict[str, Check]:
    return {n: check for n, check in _by_name(c).items() if not check.passed}


def test_a_clean_run_passes_every_check() -> None:
    assert _failed(_clean()) == {}


def test_a_row_missing_or_different_externally_fails_naming_the_id() -> None:
    c = _clean()
    c.objects = [o for o in c.objects if o["email"] != "soak2@example.org"]
    c.objects[0] = {**c.objects[0], "phone": "changed"}
    (check,) = _failed(c).values()
    assert check.name == "source rows present externally and equal"
    assert "ids [2]" in check.evidence[0] and "id 1:" in check.evidence[1]


def test_a_lost_external_edit_or_an_orphan_object_fails_the_other_direction() -> None:
    c = _clean(edits={1: "edit10"})
    c.objects = [*c.objects, {**c.objects[2], "email": "gone@example.org", "id": "x9"}]
    (check,) = _failed(c).values()
    assert check.name == "external edits pulled back, no orphan objects"
    assert any("x9" in e for e in check.evidence)
    assert any("id 1: edit 'edit10', row has 'edit9'" in e for e in check.evidence)
    assert lost_edits(c) == [1]  # the ids whose history the soak prints
    assert lost_edits(_clean()) == []


def test_two_objects_for_one_row_are_duplicates() -> None:
    c = _clean()
    c.objects = [*c.objects, {**c.objects[1], "id": "x2b"}]
    failed = _failed(c)
    assert failed["0 duplicate external objects"].evidence == [
        "soak2@example.org: objects ['x2', 'x2b']"
    ]


def test_a_write_in_the_quiet_window_fails() -> None:
    failed = _failed(_clean(quiet_writes={"api": 3, "db": 0}))
    assert list(failed) == ["0 writes in the quiet window"]
    assert failed["0 writes in the quiet window"].evidence == ["api: 3"]


def test_offsets_need_an_outcome_and_a_redelivered_skip_is_no_second_one() -> None:
    c = _clean()
    c.records = c.records | {(2, 0)}
    c.outcomes = [*c.outcomes, Outcome("result", (0, 0), "1", "skip", "already applied")]
    failed = _failed(c)
    assert list(failed) == ["every source offset: a result or a dead letter"]
    assert "(2, 0)" in failed["every source offset: a result or a dead letter"].evidence[0]
    assert run_checks(c)[1] == {"redelivered": 1, "applied_again": 0, "mixed": 0}


def test_a_bad_record_dead_lettered_again_after_a_crash_is_a_redelivery() -> None:
    again = Outcome("dead_letter", (1, 0), "3", "malformed", "ValueError: not json")
    c = _clean()
    c.outcomes = [*c.outcomes, again]
    assert _failed(c) == {}
    assert run_checks(c)[1] == {"redelivered": 1, "applied_again": 0, "mixed": 0}


def test_a_change_applied_again_after_a_crash_is_counted_not_failed() -> None:
    c = _clean()
    c.outcomes = [*c.outcomes, Outcome("result", (0, 1), "2", "update")]
    assert _failed(c) == {}
    assert run_checks(c)[1] == {"redelivered": 0, "applied_again": 1, "mixed": 0}


def test_a_result_and_a_dead_letter_for_one_record_fail() -> None:
    c = _clean()
    c.outcomes = [*c.outcomes, Outcome("dead_letter", (0, 1), "2", "mapping", "bad")]
    check = _failed(c)["every source offset: a result or a dead letter"]
    assert "(0, 1)" in check.evidence[0] and run_checks(c)[1]["mixed"] == 1


def test_a_dead_letter_for_a_good_record_or_none_for_a_bad_one_fails() -> None:
    c = _clean(malformed={(1, 0), (0, 1)})
    c.outcomes = [*c.outcomes, Outcome("dead_letter", (0, 0), "1", "sink_permanent", "HTTP 400")]
    check = _failed(c)["dead letters only for the injected bad records"]
    assert check.evidence[0].startswith("(0, 0) id 1: sink_permanent")
    assert check.evidence[1] == "malformed records without a dead letter: [(0, 1)]"


def test_memory_over_the_limit_or_unmeasured_fails() -> None:
    assert "worker peak RSS under 1024 MiB" in _failed(_clean(peak_rss_mb={"worker-0": 2000.0}))
    assert "worker peak RSS under 1024 MiB" in _failed(_clean(peak_rss_mb={}))
