"""The bench's pure figures: the saturation point, the slow-API figures, like-for-like ratios."""

from __future__ import annotations

from cdcsync.bench.latency import saturation_rate, slow_api_figures
from cdcsync.bench.phases import ratios


def step(rate: float, p99: float | None, achieved: float | None = None) -> dict:
    return {"offered_rate": rate, "achieved_rate": achieved or rate, "latency_p99_ms": p99}


def test_the_saturation_point_is_the_last_rate_before_the_first_miss():
    steps = [step(100, 120), step(200, 180), step(300, 260), step(400, 200)]
    assert saturation_rate(steps) == 200


def test_a_rate_the_load_could_not_offer_is_not_sustained():
    assert saturation_rate([step(100, 90), step(200, 100, achieved=150)]) == 100
    assert saturation_rate([step(100, 300)]) is None


def result(entity: str, completed: float, latency: float, attempts: int = 1) -> dict:
    return {
        "entity_id": entity,
        "completed_ms": completed,
        "latency_ms": latency,
        "attempts": attempts,
        "committed_ms": completed - latency,
    }


def test_slow_api_figures_leave_out_the_touched_entities_and_find_the_longest_pause():
    results = [
        result("a", 1100, 100),
        result("slow", 1200, 4000, attempts=2),
        result("slow", 1300, 3900),  # queued behind the retried one
        result("b", 1900, 120),
        result("c", 2000, 110),
    ]
    figures = slow_api_figures(results, start_ms=1000, end_ms=2100)
    assert figures["touched_entities"] == 1
    assert figures["others_results"] == 3
    assert figures["others_latency_p99_ms"] == 120
    assert figures["longest_gap_ms"] == 600  # 1300 -> 1900


def test_ratios_count_only_the_changes_cdcsync_wrote():
    drains = {
        "cdcsync": {"throughput": 110.0, "throughput_written": 100.0},
        "baseline_a": {"throughput": 50.0},
        "baseline_b": {"throughput": 10.0},
    }
    assert ratios(drains, ["cdcsync"]) == {"cdcsync_over_a": 2.0, "cdcsync_over_b": 10.0}
