"""``python -m cdcsync.bench [--quick]``: the whole benchmark, one command.

Phases, all in one run on the local stack (which must be up: ``cdcsync local up``;
``--config`` points the Kafka clients and workers at another listener of it, e.g. SASL_SSL):

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
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "cdcsync.bench"

from cdcsync.bench import latency, phases
from cdcsync.bench import workload as wl
from cdcsync.bench.api_process import RefApiProcess
from cdcsync.bench.broker import BenchKafka, add_config_option
from cdcsync.bench.cdcsync_run import OUTPUT_TOPICS, REQUEST_TIMEOUT_S, BenchWorker, write_config
from cdcsync.bench.latency import SLOW_SHARE
from cdcsync.bench.poll import POLL_TOPIC, bench_poll
from cdcsync.bench.recovery import run_recovery
from cdcsync.bench.report import render
from cdcsync.stack.settings import StackSettings

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
#: How long the slow-API phase holds a request: past the workers' timeout.
SLOW_HOLD_MS = int(REQUEST_TIMEOUT_S * 1000) + 1000


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
    p.add_argument("--max-in-flight", type=int, default=500, help="cdcsync app.max_in_flight")
    p.add_argument("--baseline-b-s", type=float, help="seconds baseline (b) runs (60, quick 15)")
    p.add_argument("--poll-records", type=int, default=10_000)
    p.add_argument("--recover-entities", type=int, help="synthetic table (100000, quick 20000)")
    p.add_argument(
        "--recovery",
        type=int,
        metavar="N",
        help="only time restart recovery of N entities' state: memory, rocksdb cold and warm",
    )
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
    p.add_argument("--only", help="comma list of phases: live,saturation,slow,state,drain,a,b,poll")
    p.add_argument(
        "--saturation-s", type=float, help="seconds at each rate of the search (20, quick 8)"
    )
    p.add_argument("--keep", action="store_true", help="leave connector, slot and table")
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/<run>.json)")
    add_config_option(p)
    a = p.parse_args(argv)
    if a.profile and shutil.which("py-spy") is None:
        p.error("--profile samples the worker with py-spy, which is not installed: "
                "pip install py-spy")  # fmt: skip
    q = a.quick
    a.ids = a.ids or (2000 if q else 10_000)
    a.updates = a.updates or (10_000 if q else 100_000)
    a.steady_s = a.steady_s or (15 if q else 60)
    a.baseline_b_s = a.baseline_b_s or (15 if q else 60)
    a.recover_entities = a.recover_entities or (20_000 if q else 100_000)
    a.saturation_s = a.saturation_s or (8 if q else 20)
    a.phases = set((a.only or "live,saturation,slow,state,drain,a,b,poll").split(","))
    return a


@dataclass
class _Run:
    """One bench run: its settings, the stack, the reference API and the workers it started."""

    args: argparse.Namespace
    stack: StackSettings
    kafka: BenchKafka
    run_id: str
    run_dir: Path
    api: RefApiProcess
    workers: list[BenchWorker] = field(default_factory=list)

    def configure(self, kind: str, bulk_max: int, topic: str) -> Path:
        """Write the configuration of the worker of ``kind`` (its app id, so its state)."""
        a = self.args
        return write_config(self.run_dir, f"cdcsync-bench-{self.run_id}-{kind}",
                            kafka=self.kafka, api_url=self.api.url, web_port=a.web_port,
                            partitions=self.stack.partitions, connections=a.connections,
                            max_in_flight=a.max_in_flight, bulk_max=bulk_max,
                            topic=topic)  # fmt: skip

    def new_worker(self, kind: str, bulk_max: int, topic: str = wl.BENCH_TOPIC) -> BenchWorker:
        """A worker of ``kind`` on ``topic`` with its own app id (so its own state), kept for
        the tear-down."""
        config = self.configure(kind, bulk_max, topic)
        worker = BenchWorker(self.kafka, config, self.run_dir, kind)
        self.workers.append(worker)
        return worker

    def tear_down(self) -> None:
        """Stop the workers and the API; unless ``--keep``, drop what the run created."""
        for w in self.workers:
            w.stop()
        self.api.stop()
        if not self.args.keep:
            wl.cleanup(self.stack)
            topics = [POLL_TOPIC, wl.BENCH_TOPIC, wl.DRAIN_TOPIC, *OUTPUT_TOPICS]
            for w in self.workers:
                topics += [w.changelog] + [
                    w.config.changelog_topic("contact", table)
                    for table in ("refs_contact", "polled_contact")
                ]
            wl.delete_topics(self.kafka, topics)
            wl.delete_groups(self.kafka, [w.config.app.id for w in self.workers])


def _report_head(run_id: str, a: argparse.Namespace) -> dict[str, Any]:
    """The report's opening: run id, start time, machine and settings."""
    return {
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


def _measure(run: _Run, workload: wl.Workload, report: dict[str, Any]) -> None:
    """Phases 1 to 5 in order (the live worker always runs), each adding its figures."""
    a, stack, kafka, api = run.args, run.stack, run.kafka, run.api
    profile_dir = run.run_dir if a.profile else None
    print("setup: bench table, connector, topic ...", flush=True)
    wl.setup(stack, kafka, run.run_dir, run.run_id, stack.partitions)
    topic_start = wl.end_offsets(kafka, wl.BENCH_TOPIC)
    live = run.new_worker("live", a.bulk)
    report["end_to_end"], records, empty_start_s = phases.end_to_end(
        stack, kafka, live, api, workload, topic_start
    )
    for key, rate in (("steady", a.rate), ("steady_low", a.low_rate)):
        if rate:
            report[key] = phases.steady(stack, kafka, api, workload, rate=rate,
                                        seconds=a.steady_s)  # fmt: skip
    _latency_phases(run, live, workload, report)
    live.stop()
    if "state" in a.phases:
        report["state"] = phases.state(stack, kafka, live, run.new_worker,
                                       entities=a.recover_entities, bulk_max=a.bulk,
                                       empty_start_s=empty_start_s)  # fmt: skip
    drains: dict[str, Any] = {}
    if a.phases & {"drain", "a", "b"}:
        records = phases.range_alone(kafka, records)
    variants = [("cdcsync", "drain", a.bulk)]
    if a.bulk:  # and without bulk calls: what the engine does per write
        variants.append(("cdcsync_single", "drain-single", 0))
    for label, kind, bulk_max in variants if "drain" in a.phases else ():
        drains[label] = phases.drain(kafka, api, run.new_worker, records, label=label, kind=kind,
                                     bulk_max=bulk_max, profile_dir=profile_dir)  # fmt: skip
    for name, concurrent, limit_s in (("a", True, None), ("b", False, a.baseline_b_s)):
        if name in a.phases:
            drains[f"baseline_{name}"] = phases.baseline(
                kafka, api, records, name=name, concurrent=concurrent, limit_s=limit_s,
                connections=a.connections, profile_dir=profile_dir,
            )  # fmt: skip
    report["drain"] = drains
    if found := phases.ratios(drains, [label for label, _kind, _bulk in variants]):
        report["ratios"] = found
    if "poll" in a.phases:
        api.reset()
        print(f"poll: {a.poll_records} external records ...", flush=True)
        report["poll"] = bench_poll(
            kafka, str(live.config_path), api.url, a.poll_records, [100, 1000]
        )


def _latency_phases(
    run: _Run, live: BenchWorker, workload: wl.Workload, report: dict[str, Any]
) -> None:
    """The slow-API phase, then the saturation search with bulk and (restarting the live
    worker on the same state with one call per write) without."""
    a, stack, kafka, api = run.args, run.stack, run.kafka, run.api
    if "slow" in a.phases:
        print(f"slow API: {SLOW_SHARE:.0%} of requests held {SLOW_HOLD_MS} ms ...", flush=True)
        report["slow_api"] = latency.slow_api(stack, kafka, api, workload, rate=a.low_rate or 100,
                                              seconds=a.steady_s, hold_ms=SLOW_HOLD_MS,
                                              clock_ms=lambda: time.time() * 1000)  # fmt: skip
    if "saturation" not in a.phases:
        return
    found = report["saturation"] = {}
    variants = [("bulk", a.bulk), ("single", 0)] if a.bulk else [("single", 0)]
    for label, bulk_max in variants:
        if bulk_max != a.bulk:  # the same worker and state, one call per write
            live.stop()
            run.configure("live", bulk_max, wl.BENCH_TOPIC)
            live.start()
            # Warm up (connections, caches) unmeasured: the first step is not a cold start.
            phases.steady(stack, kafka, api, workload, rate=50, seconds=4)
        print(f"saturation ({label}) ...", flush=True)
        found[label] = latency.saturation(stack, kafka, api, workload, seconds=a.saturation_s)


def main(argv: list[str] | None = None) -> int:
    """Run every phase, print the table and save the report as JSON."""
    a = _args(argv)
    stack = StackSettings()
    kafka = BenchKafka.of(stack, a.config)
    if a.recovery:
        run_recovery(a.recovery, kafka=kafka, web_port=a.web_port, keep=a.keep, out=a.out)
        return 0
    run_id = wl.new_run_id()
    run_dir = HERE / "results" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"cdcsync bench {run_id}: logs and profiles in {run_dir}", flush=True)
    report = _report_head(run_id, a)
    workload = wl.build_workload(
        ids=a.ids, updates=a.updates, insert_share=a.insert_share, delete_share=a.delete_share
    )
    report["workload"] = {
        **workload.counts,
        "changes": len(workload.all),
        "kafka_records": workload.kafka_records(),
    }
    api = RefApiProcess(a.api_port, a.latency_ms, run_dir / "refapi.log")
    run = _Run(a, stack, kafka, run_id, run_dir, api)
    try:
        _measure(run, workload, report)
    finally:
        run.tear_down()
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["machine"]["load_avg_at_end"] = os.getloadavg()
    out = a.out or (HERE / "results" / f"{run_id}.json")
    out.write_text(json.dumps(report, indent=2, default=str))
    print(render(report, a))
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
