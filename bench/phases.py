"""The bench's phases on the running stack, each returning its figures for the report.

Each phase takes what it runs against: the stack settings (PostgreSQL), the Kafka
its clients use (``BenchKafka``), the reference API process, and, where it starts
workers, a factory that makes one (the run keeps track of them for the tear-down).
The figures come from cdcsync's own result and dead-letter topics and from the API's
request counter.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cdcsync.bench import workload as wl
from cdcsync.bench.api_process import RefApiProcess
from cdcsync.bench.baselines import run_baseline
from cdcsync.bench.broker import BenchKafka
from cdcsync.bench.cdcsync_run import (
    DEAD_LETTERS,
    MAPPING,
    RESULTS,
    BenchWorker,
    Outputs,
    changelog_stats,
    copy_range,
    proc_cpu_s,
    produce_synthetic_state,
    py_spy,
    read_events,
)
from cdcsync.stack.settings import StackSettings

__all__ = [
    "TopicRange",
    "WorkerFactory",
    "baseline",
    "drain",
    "end_to_end",
    "measure",
    "percentile",
    "range_alone",
    "ratios",
    "state",
    "steady",
]

SYNCED = {"create", "update", "delete"}
_SEEDS = itertools.count(11)

#: ``(kind, bulk_max, topic)`` -> a configured worker of that kind, not yet started.
WorkerFactory = Callable[[str, int, str], BenchWorker]


@dataclass(frozen=True)
class TopicRange:
    """The bench topic's records of phase 1, which every drain processes again."""

    start: dict[int, int]
    end: dict[int, int]
    #: Workload changes in the range, and the Kafka records carrying them.
    changes: int
    records: int
    topic: str = wl.BENCH_TOPIC


def range_alone(kafka: BenchKafka, records: TopicRange) -> TopicRange:
    """The range copied to a topic of its own, so a drain ends where the range ends."""
    t0 = time.monotonic()
    end = copy_range(kafka, records.topic, wl.DRAIN_TOPIC, records.start, records.end)
    copied = sum(end.values())
    if copied != records.records:
        raise RuntimeError(f"copied {copied} of the range's {records.records} records")
    print(f"drain topic: {copied} records copied in {time.monotonic() - t0:.1f}s", flush=True)
    return replace(records, start=dict.fromkeys(end, 0), end=end, topic=wl.DRAIN_TOPIC)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def _summarise(results: list[dict[str, Any]], dead: list[dict[str, Any]]) -> dict[str, Any]:
    actions: dict[str, int] = {}
    for r in results:
        actions[r["action"]] = actions.get(r["action"], 0) + 1
    # A coalesced change reached the API too, inside the write of a later change.
    synced = [r for r in results if r["action"] in SYNCED or r["reason"].startswith("coalesced")]
    lat = [r["latency_ms"] for r in synced if r.get("committed_ms")]
    return {
        "results": len(results),
        "dead_letters": len(dead),
        "dead_letter_reasons": sorted({d["reason"] for d in dead}),
        "actions": actions,
        "synced": len(synced),
        "coalesced": sum(1 for r in results if r["reason"].startswith("coalesced")),
        "api_calls_in_results": sum(r["api_calls"] for r in results),
        "latency_p50_ms": percentile(lat, 0.5),
        "latency_p99_ms": percentile(lat, 0.99),
        "latency_max_ms": percentile(lat, 1.0),
        "latency_mean_ms": round(statistics.fmean(lat), 1) if lat else None,
    }


def _within(events: list[dict[str, Any]], end: dict[int, int]) -> list[dict[str, Any]]:
    return [e for e in events if e["source"]["offset"] < end.get(e["source"]["partition"], 0)]


def measure(
    kafka: BenchKafka,
    outputs: Outputs,
    expected: int,
    api: RefApiProcess,
    calls_before: int,
    end: dict[int, int] | None = None,
) -> dict[str, Any]:
    """Wait for ``expected`` results and dead letters since ``outputs``, then summarise them:
    actions, latency percentiles, API calls per synced change, first and last timestamps.
    """
    got = outputs.wait(kafka, expected)
    deadline = time.monotonic() + 120
    while True:
        results = read_events(kafka, RESULTS, outputs.results)
        dead = read_events(kafka, DEAD_LETTERS, outputs.dead_letters)
        if end is None:
            break
        # A drain runs on past its range (into the steady-rate records): count only the
        # range, and wait until every partition finished its part of it.
        results, dead = _within(results, end), _within(dead, end)
        got = len(results) + len(dead)
        if got >= expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    summary = _summarise(results, dead)
    summary["expected_events"] = expected
    summary["complete"] = got >= expected
    calls = api.requests() - calls_before
    summary["api_requests"] = calls
    # A drain's own count (the API also served the records after its range by then).
    counted = summary["api_calls_in_results"] if end is not None else calls
    summary["api_calls_per_synced_change"] = round(counted / max(summary["synced"], 1), 3)
    if results:
        summary["first_commit_ms"] = min(r["committed_ms"] or 1e18 for r in results)
        summary["first_received_ms"] = min(r["received_ms"] for r in results)
        summary["last_completed_ms"] = max(r["completed_ms"] for r in results)
    return summary


def end_to_end(
    stack: StackSettings,
    kafka: BenchKafka,
    live: BenchWorker,
    api: RefApiProcess,
    workload: wl.Workload,
    topic_start: dict[int, int],
) -> tuple[dict[str, Any], TopicRange, float]:
    """Phase 1: the whole workload committed as fast as PostgreSQL takes it while ``live``
    runs; ``(figures, the topic range it produced, the worker's start with empty state in s)``.
    """
    n_changes, n_records = len(workload.all), workload.kafka_records()
    live.prepare()
    empty_start_s = live.start()
    print(f"live worker ready in {empty_start_s:.1f}s; loading {n_changes} changes ...",
          flush=True)  # fmt: skip
    outputs = Outputs.now(kafka)
    calls0 = api.requests()
    load_s = wl.load_fast(stack, workload.all)
    topic_end = wl.wait_records(kafka, wl.BENCH_TOPIC, topic_start, n_records, 600)
    debezium_done = time.time() * 1000
    e2e = measure(kafka, outputs, n_records, api, calls0)
    span = (e2e["last_completed_ms"] - e2e["first_commit_ms"]) / 1000
    e2e |= {
        "load_s": round(load_s, 2),
        "load_rate": round(n_changes / load_s),
        "debezium_lag_s": round((debezium_done - e2e["first_commit_ms"]) / 1000, 2),
        "seconds": round(span, 2),
        "throughput": round(n_changes / span, 1),
    }
    print(f"  end to end: {e2e['throughput']} changes/s ({span:.1f}s)", flush=True)
    return e2e, TopicRange(topic_start, topic_end, n_changes, n_records), empty_start_s


def steady(
    stack: StackSettings, kafka: BenchKafka, api: RefApiProcess, workload: wl.Workload, *,
    rate: float, seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """Phase 2: updates committed at a steady ``rate`` for ``seconds`` (the live worker
    running); commit-to-external-write latency.
    """
    # A seed of its own per phase: replaying one phase's rows would write content the
    # entities already had, which the loop guard rightly holds (agents/decide.py).
    updates = wl.steady_updates(workload, int(rate * seconds), seed=next(_SEEDS))
    outputs = Outputs.now(kafka)
    calls0 = api.requests()
    print(f"steady: {len(updates)} updates at {rate:g}/s ...", flush=True)
    achieved = wl.load_steady(stack, updates, rate=rate)
    lat = measure(kafka, outputs, len(updates), api, calls0)
    lat["offered_rate"] = rate
    lat["achieved_rate"] = round(achieved, 1)
    print(f"  p50 {lat['latency_p50_ms']} ms, p99 {lat['latency_p99_ms']} ms", flush=True)
    return lat


def state(
    stack: StackSettings,
    kafka: BenchKafka,
    live: BenchWorker,
    new_worker: WorkerFactory,
    *,
    entities: int,
    bulk_max: int,
    empty_start_s: float,
) -> dict[str, Any]:
    """Phase 3: bytes per entity in the (stopped) live worker's changelog, its restart time,
    and the recovery of a synthetic table of ``entities`` by a fresh worker.
    """
    stats = changelog_stats(kafka, live.changelog)
    restart_s = live.start()
    restart_recovery_s = live.recovery_s
    live.stop()
    big = new_worker("recover", bulk_max, wl.BENCH_TOPIC)
    big.prepare()
    produce_s = produce_synthetic_state(
        kafka, big.changelog, entities, stack.partitions, stats["sample_value"]
    )
    big_s = big.start()
    big_recovery_s = big.recovery_s
    big.stop()
    print(f"  state: {stats['bytes_per_entity']} B/entity; restart {restart_s:.1f}s, "
          f"{entities} entities {big_s:.1f}s", flush=True)  # fmt: skip
    return {
        **stats,
        "empty_start_s": round(empty_start_s, 2),
        "restart_s": round(restart_s, 2),
        "restart_recovery_s": restart_recovery_s,
        "synthetic_recovery_s": big_recovery_s,
        "synthetic_entities": entities,
        "synthetic_produce_s": round(produce_s, 2),
        "synthetic_restart_s": round(big_s, 2),
    }


def drain(
    kafka: BenchKafka,
    api: RefApiProcess,
    new_worker: WorkerFactory,
    records: TopicRange,
    *,
    label: str,
    kind: str,
    bulk_max: int,
    profile_dir: Path | None,
) -> dict[str, Any]:
    """Phase 4, cdcsync: the range's records through a fresh worker against an emptied API;
    throughput, and CPU per change of the worker and per request of the API.
    """
    api.reset()
    worker = new_worker(kind, bulk_max, records.topic)
    worker.prepare(start=records.start)
    outputs = Outputs.now(kafka)
    worker.start()
    cpu0, api_cpu0 = proc_cpu_s(worker.pid), proc_cpu_s(api.proc.pid)
    if profile_dir is not None:
        worker.start_profile(profile_dir / f"profile-{label}.txt", seconds=30)
    d = measure(kafka, outputs, records.records, api, 0, end=records.end)
    cpu, api_cpu = proc_cpu_s(worker.pid) - cpu0, proc_cpu_s(api.proc.pid) - api_cpu0
    worker.stop()
    span = (d["last_completed_ms"] - d["first_received_ms"]) / 1000
    # Like with like: the baselines write every change, cdcsync folds some into the next.
    written = records.changes - d["coalesced"]
    d |= {
        "seconds": round(span, 2),
        "throughput": round(records.changes / span, 1),
        "throughput_written": round(written / span, 1),
        "cpu_ms_per_change": round(cpu * 1000 / records.changes, 2),
        "api_cpu_ms_per_request": round(api_cpu * 1000 / max(d["api_requests"], 1), 2),
    }
    print(f"  drain {label} (bulk_max {bulk_max}): {d['throughput']} changes/s", flush=True)
    return d


def baseline(
    kafka: BenchKafka,
    api: RefApiProcess,
    records: TopicRange,
    *,
    name: str,
    concurrent: bool,
    limit_s: float | None,
    connections: int,
    profile_dir: Path | None,
) -> dict[str, Any]:
    """Phase 4, a baseline (in this process): the range's records against an emptied API;
    throughput and CPU per change.
    """
    api.reset()
    prof = None
    if profile_dir is not None and concurrent:
        prof = py_spy(os.getpid(), profile_dir / "profile-baseline-a.txt", 30)
    cpu0, api_cpu0 = time.process_time(), proc_cpu_s(api.proc.pid)
    r = run_baseline(
        kafka=kafka, topic=records.topic, start=records.start,
        end=records.end, api_url=api.url, mapping=MAPPING, concurrent=concurrent,
        connections=connections, max_records=None, max_seconds=limit_s,
    )  # fmt: skip
    if prof is not None:
        prof.wait()
    cpu, api_cpu = time.process_time() - cpu0, proc_cpu_s(api.proc.pid) - api_cpu0
    changes = r.records - r.tombstones
    calls = api.requests()
    figures = {
        "records": r.records,
        "changes": changes,
        "writes": r.writes,
        "errors": r.errors,
        "seconds": round(r.seconds, 2),
        "throughput": round(changes / r.seconds, 1) if r.seconds else None,
        "api_requests": calls,
        "api_calls_per_synced_change": round(calls / max(r.writes, 1), 3),
        "complete": r.records >= records.records,
        "cpu_ms_per_change": round(cpu * 1000 / max(r.records, 1), 2),
        "api_cpu_ms_per_request": round(api_cpu * 1000 / max(calls, 1), 2),
    }
    print(f"  baseline ({name}): {figures['throughput']} changes/s", flush=True)
    return figures


def ratios(drains: dict[str, Any], labels: Iterable[str]) -> dict[str, float]:
    """Each cdcsync drain's throughput over each baseline's, where both ran; cdcsync's
    counts only the changes it wrote (not those coalesced into a later write)."""
    found: dict[str, float] = {}
    for label in labels:
        drained = drains.get(label, {})
        c = drained.get("throughput_written") or drained.get("throughput")
        for name in ("a", "b"):
            b = drains.get(f"baseline_{name}", {}).get("throughput")
            if c and b:
                found[f"{label}_over_{name}"] = round(c / b, 2)
    return found
