"""The latency phases: the saturation point, and the other keys' latency while calls hang.

Both run steady updates on the live worker (``phases.steady``) and read its
results. The saturation point is the highest offered rate whose p99 commit →
external write stays under :data:`P99_LIMIT_MS`; the slow-API phase delays 1%
of the API's requests past the worker's timeout and measures the entities
those requests did not touch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from cdcsync.bench import workload as wl
from cdcsync.bench.api_process import RefApiProcess
from cdcsync.bench.broker import BenchKafka
from cdcsync.bench.cdcsync_run import RESULTS, Outputs, read_events
from cdcsync.bench.phases import percentile, steady
from cdcsync.stack.settings import StackSettings

__all__ = [
    "P99_LIMIT_MS",
    "SATURATION_RATES",
    "SLOW_SHARE",
    "saturation",
    "saturation_rate",
    "slow_api",
    "slow_api_figures",
]

#: The latency a rate must keep to count as sustained (the issue's target).
P99_LIMIT_MS = 250.0
#: Offered rates tried in order, changes/s; the search stops at the first one missed.
SATURATION_RATES = (100, 200, 300, 400, 500, 600, 800, 1000)
#: Share of the API's requests the slow-API phase holds past the worker's timeout.
SLOW_SHARE = 0.01


def saturation_rate(
    steps: Sequence[dict[str, Any]], limit_ms: float = P99_LIMIT_MS
) -> float | None:
    """The highest offered rate, trying them in order, whose p99 stayed under ``limit_ms``
    and which the load achieved (90%); None if the first already missed."""
    best = None
    for step in steps:
        p99, offered = step.get("latency_p99_ms"), step["offered_rate"]
        if p99 is None or p99 >= limit_ms or step.get("achieved_rate", 0) < 0.9 * offered:
            break
        best = offered
    return best


def saturation(
    stack: StackSettings,
    kafka: BenchKafka,
    api: RefApiProcess,
    workload: wl.Workload,
    *,
    seconds: float,
    rates: Sequence[float] = SATURATION_RATES,
) -> dict[str, Any]:
    """Steady updates at rising rates, each drained before the next, until one misses."""
    steps: list[dict[str, Any]] = []
    for rate in rates:
        step = steady(stack, kafka, api, workload, rate=rate, seconds=seconds)
        keep = ("offered_rate", "achieved_rate", "latency_p50_ms", "latency_p99_ms", "coalesced")
        steps.append({k: step.get(k) for k in keep})
        if saturation_rate(steps) != rate:
            break
    best = saturation_rate(steps)
    print(f"  saturation: {best} changes/s (p99 < {P99_LIMIT_MS:g} ms)", flush=True)
    return {"steps": steps, "saturation_rate": best, "p99_limit_ms": P99_LIMIT_MS}


def slow_api_figures(
    results: list[dict[str, Any]], *, start_ms: float, end_ms: float
) -> dict[str, Any]:
    """Latency of the entities no slow call touched, and the longest pause of all results.

    An entity is touched when one of its results took more than one attempt (its call
    timed out, it was parked and retried) or queued behind such a record.
    """
    touched = {r["entity_id"] for r in results if r["attempts"] > 1}
    others = [
        r["latency_ms"]
        for r in results
        if r["entity_id"] not in touched and r.get("committed_ms") is not None
    ]
    stamps = sorted(r["completed_ms"] for r in results if start_ms <= r["completed_ms"] <= end_ms)
    edges = [start_ms, *stamps, end_ms]
    gaps = [b - a for a, b in itertools.pairwise(edges)]
    return {
        "touched_entities": len(touched),
        "others_results": len(others),
        "others_latency_p50_ms": percentile(others, 0.5),
        "others_latency_p99_ms": percentile(others, 0.99),
        "longest_gap_ms": round(max(gaps), 1) if gaps else None,
    }


def slow_api(
    stack: StackSettings,
    kafka: BenchKafka,
    api: RefApiProcess,
    workload: wl.Workload,
    *,
    rate: float,
    seconds: float,
    hold_ms: int,
    clock_ms: Callable[[], float],
) -> dict[str, Any]:
    """Steady updates at ``rate`` while :data:`SLOW_SHARE` of the API's requests are held
    ``hold_ms`` (past the worker's timeout); the untouched entities' latency."""
    outputs = Outputs.now(kafka)
    api.fault(latency_ms=hold_ms, count=None, rate=SLOW_SHARE)
    start = clock_ms()
    try:
        figures = steady(stack, kafka, api, workload, rate=rate, seconds=seconds)
    finally:
        api.clear_faults()
    results = read_events(kafka, RESULTS, outputs.results)
    slow = slow_api_figures(results, start_ms=start, end_ms=start + seconds * 1000)
    print(f"  slow API: others' p99 {slow['others_latency_p99_ms']} ms, "
          f"longest gap {slow['longest_gap_ms']} ms", flush=True)  # fmt: skip
    keep = ("offered_rate", "achieved_rate", "latency_p50_ms", "latency_p99_ms", "dead_letters")
    return {k: figures.get(k) for k in keep} | slow | {"hold_ms": hold_ms, "share": SLOW_SHARE}
