"""``python -m cdcsync.bench [--quick]``: the whole benchmark, one command.

Phases, all in one run on the local stack (which must be up: ``cdcsync local up``):

1. end-to-end: a cdcsync worker runs live while the workload (seed inserts, then
   updates over the ids with a share of inserts and deletes) is committed as fast
   as PostgreSQL takes it; throughput from the first commit to the last result;
2. latency: updates committed at a steady rate; commit-to-external-write p50/p99;
3. state: bytes per entity in the changelog; time to recover it after a restart,
   and for a synthetic large table;
4. drain: the same records (the topic range of phase 1) through a fresh cdcsync
   worker, baseline (a) and baseline (b), each against an emptied API;
5. poll: the Poller over 10,000 external records.

Prints a table and writes ``bench/results/<run>.json``. Numbers on a shared
2-core machine are noisy: run it on a quiet machine and compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "cdcsync.bench"

from cdcsync.bench import workload as wl
from cdcsync.bench.baselines import run_baseline
from cdcsync.bench.cdcsync_run import (
    DEAD_LETTERS,
    MAPPING,
    OUTPUT_TOPICS,
    RESULTS,
    BenchWorker,
    Outputs,
    changelog_stats,
    proc_cpu_s,
    produce_synthetic_state,
    py_spy,
    read_events,
    write_config,
)
from cdcsync.bench.poll import POLL_TOPIC, bench_poll
from cdcsync.bench.report import render
from cdcsync.stack.settings import StackSettings

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
SYNCED = {"create", "update", "delete"}


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cdcsync.bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a smaller run that takes a few minutes")
    p.add_argument("--ids", type=int, help="seed rows (default 10000, quick 2000)")
    p.add_argument("--updates", type=int, help="updates (default 100000, quick 10000)")
    p.add_argument("--insert-share", type=float, default=0.05, help="inserts per update")
    p.add_argument("--delete-share", type=float, default=0.02, help="deletes per update")
    p.add_argument("--latency-ms", type=int, default=25, help="added API latency")
    p.add_argument("--rate", type=float, default=500, help="steady offered rate, changes/s")
    p.add_argument("--low-rate", type=float, default=100, help="a second rate, 0: none")
    p.add_argument("--steady-s", type=float, help="seconds at the steady rate (60, quick 15)")
    p.add_argument(
        "--connections",
        type=int,
        default=20,
        help="HTTP connections per system (RestSettings.max_connections default: 20)",
    )
    p.add_argument("--batch-size", type=int, default=200, help="cdcsync app.batch_size")
    p.add_argument("--baseline-b-s", type=float, help="seconds baseline (b) runs (60, quick 15)")
    p.add_argument("--poll-records", type=int, default=10_000)
    p.add_argument("--recover-entities", type=int, help="synthetic table (100000, quick 20000)")
    p.add_argument("--api-port", type=int, default=8950)
    p.add_argument("--web-port", type=int, default=6080)
    p.add_argument(
        "--bulk",
        type=int,
        default=100,
        help="cdcsync writes per bulk call (RestSettings.bulk_max); 0: one call per write. "
        "With bulk, the drain also runs cdcsync without it",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the drain phases")
    p.add_argument("--only", help="comma list of phases: live,state,drain,a,b,poll")
    p.add_argument("--keep", action="store_true", help="leave connector, slot and table")
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/<run>.json)")
    a = p.parse_args(argv)
    q = a.quick
    a.ids = a.ids or (2000 if q else 10_000)
    a.updates = a.updates or (10_000 if q else 100_000)
    a.steady_s = a.steady_s or (15 if q else 60)
    a.baseline_b_s = a.baseline_b_s or (15 if q else 60)
    a.recover_entities = a.recover_entities or (20_000 if q else 100_000)
    a.phases = set((a.only or "live,state,drain,a,b,poll").split(","))
    return a


class RefApiProcess:
    """The reference API in its own process (its CPU is not the worker's)."""

    def __init__(self, port: int, latency_ms: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "cdcsync.refapi", "--port", str(port),
               "--latency-ms", str(latency_ms), "--log-level", "WARNING"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/_admin/stats", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"reference API did not start on {self.url}; see {log}")

    def reset(self) -> None:
        httpx.post(f"{self.url}/_admin/reset", timeout=30).raise_for_status()

    def requests(self) -> int:
        return int(httpx.get(f"{self.url}/_admin/stats", timeout=30).json()["requests"]["total"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _pct(values: list[float], q: float) -> float | None:
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
        "latency_p50_ms": _pct(lat, 0.5),
        "latency_p99_ms": _pct(lat, 0.99),
        "latency_max_ms": _pct(lat, 1.0),
        "latency_mean_ms": round(statistics.fmean(lat), 1) if lat else None,
    }


def _within(events: list[dict[str, Any]], end: dict[int, int]) -> list[dict[str, Any]]:
    return [e for e in events if e["source"]["offset"] < end.get(e["source"]["partition"], 0)]


def _cdcsync_phase(
    stack: StackSettings,
    worker: BenchWorker,
    outputs: Outputs,
    expected: int,
    api: RefApiProcess,
    calls_before: int,
    end: dict[int, int] | None = None,
) -> dict[str, Any]:
    got = outputs.wait(stack, expected)
    deadline = time.monotonic() + 120
    while True:
        results = read_events(stack, RESULTS, outputs.results)
        dead = read_events(stack, DEAD_LETTERS, outputs.dead_letters)
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


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    stack = StackSettings()
    run_id = wl.new_run_id()
    run_dir = HERE / "results" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"cdcsync bench {run_id}: logs and profiles in {run_dir}", flush=True)
    report: dict[str, Any] = {
        "run": run_id,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_at_start": os.getloadavg(),
        },
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "phases"
        },
    }
    workload = wl.build_workload(
        ids=a.ids, updates=a.updates, insert_share=a.insert_share, delete_share=a.delete_share
    )
    n_changes = len(workload.all)
    n_records = workload.kafka_records()
    report["workload"] = {**workload.counts, "changes": n_changes, "kafka_records": n_records}
    api = RefApiProcess(a.api_port, a.latency_ms, run_dir / "refapi.log")
    kinds = ("live", "drain", "drain-single", "recover")
    app_ids = {p: f"cdcsync-bench-{run_id}-{p}" for p in kinds}
    workers: list[BenchWorker] = []

    def worker_for(kind: str, bulk_max: int = a.bulk) -> BenchWorker:
        path = write_config(run_dir, app_ids[kind], api_url=api.url, web_port=a.web_port,
                            partitions=stack.partitions, connections=a.connections,
                            batch_size=a.batch_size, bulk_max=bulk_max)  # fmt: skip
        w = BenchWorker(stack, path, run_dir, kind)
        workers.append(w)
        return w

    try:
        print("setup: bench table, connector, topic ...", flush=True)
        wl.setup(stack, run_dir, run_id, stack.partitions)
        topic_start = wl.end_offsets(stack, wl.BENCH_TOPIC)

        # -- 1. end to end, live --------------------------------------------------------
        live = worker_for("live")
        live.prepare()
        empty_start_s = live.start()
        print(f"live worker ready in {empty_start_s:.1f}s; loading {n_changes} changes ...",
              flush=True)  # fmt: skip
        outputs = Outputs.now(stack)
        calls0 = api.requests()
        load_s = wl.load_fast(stack, workload.all)
        topic_end = wl.wait_records(stack, wl.BENCH_TOPIC, topic_start, n_records, 600)
        debezium_done = time.time() * 1000
        e2e = _cdcsync_phase(stack, live, outputs, n_records, api, calls0)
        span = (e2e["last_completed_ms"] - e2e["first_commit_ms"]) / 1000
        e2e |= {
            "load_s": round(load_s, 2),
            "load_rate": round(n_changes / load_s),
            "debezium_lag_s": round((debezium_done - e2e["first_commit_ms"]) / 1000, 2),
            "seconds": round(span, 2),
            "throughput": round(n_changes / span, 1),
        }
        report["end_to_end"] = e2e
        print(f"  end to end: {e2e['throughput']} changes/s ({span:.1f}s)", flush=True)

        # -- 2. latency at steady rates: the target rate, and a lower one ------------------
        for key, rate in (("steady", a.rate), ("steady_low", a.low_rate)):
            if not rate:
                continue
            steady = wl.steady_updates(workload, int(rate * a.steady_s), seed=int(rate))
            outputs = Outputs.now(stack)
            calls0 = api.requests()
            print(f"steady: {len(steady)} updates at {rate:g}/s ...", flush=True)
            achieved = wl.load_steady(stack, steady, rate=rate)
            lat = _cdcsync_phase(stack, live, outputs, len(steady), api, calls0)
            lat["offered_rate"] = rate
            lat["achieved_rate"] = round(achieved, 1)
            report[key] = lat
            print(f"  p50 {lat['latency_p50_ms']} ms, p99 {lat['latency_p99_ms']} ms", flush=True)

        # -- 3. state size and recovery ------------------------------------------------------
        live.stop()
        if "state" in a.phases:
            stats = changelog_stats(stack, live.changelog)
            restart_s = live.start()
            restart_recovery_s = live.recovery_s
            live.stop()
            big = worker_for("recover")
            big.prepare()
            produce_s = produce_synthetic_state(
                stack, big.changelog, a.recover_entities, stack.partitions, stats["sample_value"]
            )
            big_s = big.start()
            big_recovery_s = big.recovery_s
            big.stop()
            report["state"] = {
                **stats,
                "empty_start_s": round(empty_start_s, 2),
                "restart_s": round(restart_s, 2),
                "restart_recovery_s": restart_recovery_s,
                "synthetic_recovery_s": big_recovery_s,
                "synthetic_entities": a.recover_entities,
                "synthetic_produce_s": round(produce_s, 2),
                "synthetic_restart_s": round(big_s, 2),
            }
            print(f"  state: {stats['bytes_per_entity']} B/entity; restart {restart_s:.1f}s, "
                  f"{a.recover_entities} entities {big_s:.1f}s", flush=True)  # fmt: skip

        # -- 4. drains of the same records ---------------------------------------------------
        drains: dict[str, Any] = {}
        variants = [("cdcsync", "drain", a.bulk)]
        if a.bulk:  # and without bulk calls: what the engine does per write
            variants.append(("cdcsync_single", "drain-single", 0))
        for label, kind, bulk_max in variants if "drain" in a.phases else ():
            api.reset()
            drain = worker_for(kind, bulk_max)
            drain.prepare(start=topic_start)
            outputs = Outputs.now(stack)
            drain.start()
            cpu0, api_cpu0 = proc_cpu_s(drain.pid), proc_cpu_s(api.proc.pid)
            if a.profile:
                drain.start_profile(run_dir / f"profile-{label}.txt", seconds=30)
            d = _cdcsync_phase(stack, drain, outputs, n_records, api, 0, end=topic_end)
            cpu, api_cpu = proc_cpu_s(drain.pid) - cpu0, proc_cpu_s(api.proc.pid) - api_cpu0
            drain.stop()
            span = (d["last_completed_ms"] - d["first_received_ms"]) / 1000
            d |= {
                "seconds": round(span, 2),
                "throughput": round(n_changes / span, 1),
                "cpu_ms_per_change": round(cpu * 1000 / n_changes, 2),
                "api_cpu_ms_per_request": round(api_cpu * 1000 / max(d["api_requests"], 1), 2),
            }
            drains[label] = d
            print(f"  drain {label} (bulk_max {bulk_max}): {d['throughput']} changes/s", flush=True)
        for name, concurrent, limit_s in (("a", True, None), ("b", False, a.baseline_b_s)):
            if name not in a.phases:
                continue
            api.reset()
            prof = None
            if a.profile and concurrent:
                prof = py_spy(os.getpid(), run_dir / "profile-baseline-a.txt", 30)
            cpu0, api_cpu0 = time.process_time(), proc_cpu_s(api.proc.pid)
            r = run_baseline(
                bootstrap=stack.bootstrap_servers, topic=wl.BENCH_TOPIC, start=topic_start,
                end=topic_end, api_url=api.url, mapping=MAPPING, concurrent=concurrent,
                connections=a.connections, max_records=None, max_seconds=limit_s,
            )  # fmt: skip
            if prof is not None:
                prof.wait()
            cpu, api_cpu = time.process_time() - cpu0, proc_cpu_s(api.proc.pid) - api_cpu0
            changes = r.records - r.tombstones
            calls = api.requests()
            drains[f"baseline_{name}"] = {
                "records": r.records,
                "changes": changes,
                "writes": r.writes,
                "errors": r.errors,
                "seconds": round(r.seconds, 2),
                "throughput": round(changes / r.seconds, 1) if r.seconds else None,
                "api_requests": calls,
                "api_calls_per_synced_change": round(calls / max(r.writes, 1), 3),
                "complete": r.records >= n_records,
                "cpu_ms_per_change": round(cpu * 1000 / max(r.records, 1), 2),
                "api_cpu_ms_per_request": round(api_cpu * 1000 / max(calls, 1), 2),
            }
            print(f"  baseline ({name}): {drains[f'baseline_{name}']['throughput']} changes/s",
                  flush=True)  # fmt: skip
        report["drain"] = drains
        for label, _kind, _bulk in variants:
            c = drains.get(label, {}).get("throughput")
            for name in ("a", "b"):
                b = drains.get(f"baseline_{name}", {}).get("throughput")
                if c and b:
                    report.setdefault("ratios", {})[f"{label}_over_{name}"] = round(c / b, 2)

        # -- 5. poll ------------------------------------------------------------------------
        if "poll" in a.phases:
            api.reset()
            print(f"poll: {a.poll_records} external records ...", flush=True)
            report["poll"] = bench_poll(
                stack, str(live.config_path), api.url, a.poll_records, [100, 1000]
            )
    finally:
        for w in workers:
            w.stop()
        api.stop()
        if not a.keep:
            wl.cleanup(stack)
            topics = [POLL_TOPIC, wl.BENCH_TOPIC, *OUTPUT_TOPICS]
            for w in workers:
                topics += [w.changelog, w.config.changelog_topic("contact", "refs_contact")]
            wl.delete_topics(stack, topics)
            wl.delete_groups(stack, [w.config.app.id for w in workers])
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["machine"]["load_avg_at_end"] = os.getloadavg()
    out = a.out or (HERE / "results" / f"{run_id}.json")
    out.write_text(json.dumps(report, indent=2, default=str))
    print(render(report, a))
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
