"""The soak's fault schedule: what fails when, and the API's standing rules."""

from __future__ import annotations

from cdcsync.refapi.faults import FaultSpec
from cdcsync.soak.schedule import api_rules, build_schedule, burst_rule


def test_a_worker_is_killed_every_20_s_alternating_between_the_two() -> None:
    kills = [f for f in build_schedule(130) if f.kind == "kill_worker"]
    assert [f.at_s for f in kills] == [20, 40, 60, 80, 100, 120]
    assert [f.worker for f in kills] == [0, 1, 0, 1, 0, 1]


def test_connect_restarts_every_2_minutes_and_the_broker_once_between_two_kills() -> None:
    schedule = build_schedule(600)
    connect = [f.at_s for f in schedule if f.kind == "restart_connect"]
    assert connect == [125, 245, 365, 485]
    (broker,) = [f.at_s for f in schedule if f.kind == "restart_broker"]
    assert broker == 310  # half way, between the kills at 300 and 320
    kills = {f.at_s for f in schedule if f.kind == "kill_worker"}
    assert not kills & {broker, *connect}


def test_a_short_run_still_restarts_connect_and_the_broker_once() -> None:
    schedule = build_schedule(100)
    assert [f.at_s for f in schedule if f.kind == "restart_connect"] == [38.3]
    assert [f.at_s for f in schedule if f.kind == "restart_broker"] == [50]
    assert all(f.at_s < 100 for f in schedule)


def test_the_schedule_is_in_time_order_with_429_bursts_every_30_s() -> None:
    schedule = build_schedule(300)
    assert [f.at_s for f in schedule] == sorted(f.at_s for f in schedule)
    bursts = [f.at_s for f in schedule if f.kind == "api_429_burst"]
    assert bursts == [31, 61, 91, 121, 151, 181, 211, 241, 271]


def test_the_api_rules_are_ones_the_reference_api_takes() -> None:
    rules = [FaultSpec.model_validate(r) for r in [*api_rules(), burst_rule()]]
    assert {r.rate for r in rules if r.status == 503} == {0.10}
    timeouts = [r for r in rules if r.latency_ms]
    assert [(r.rate, r.latency_ms > 10_000) for r in timeouts] == [(0.02, True)]  # > sink timeout
    assert {r.method for r in rules if r.connection == "lost_answer"} == {"POST", "PUT", "DELETE"}
    assert rules[-1].status == 429 and rules[-1].retry_after_header() == "2"
