"""``python -m cdcsync.soak [--quick]``: the chaos soak, one command.

On the stack the ``CDCSYNC_*`` settings name (which must be up: ``cdcsync local up``;
``--config`` points the Kafka clients and workers at another listener of it, e.g. SASL_SSL),
with its own table, connector and topics: two workers sync a seeded workload (row
inserts, updates and deletes; external edits of a two-way set of ids, polled back;
malformed records) while the fault schedule runs (:mod:`cdcsync.soak.schedule`). Then
the API's faults are cleared, the pipeline drains, a quiet window watches for writes,
and the checks (:mod:`cdcsync.soak.checks`) judge the end state. Prints a table, writes
``soak/results/<run>.json`` and exits 1 naming each failed check and its evidence.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from cdcsync.bench.api_process import RefApiProcess
from cdcsync.bench.broker import BenchKafka, add_config_option
from cdcsync.bench.workload import new_run_id
from cdcsync.demo.harness import WorkerProcess, start_group_at_end
from cdcsync.soak import collect, setup, trace
from cdcsync.soak.chaos import FaultRunner, RssSampler, ensure_stack, start_worker
from cdcsync.soak.checks import Collected, lost_edits, run_checks
from cdcsync.soak.load import Loader
from cdcsync.soak.report import fault_counts, render
from cdcsync.soak.schedule import api_rules, build_schedule
from cdcsync.soak.workload import build_workload, counts
from cdcsync.stack import kafka
from cdcsync.stack.settings import StackSettings

#: How long the drain waits for external edits once nothing else moves.
EDITS_WAIT_S = 60

__all__ = ["main"]

HERE = Path(__file__).resolve().parent


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cdcsync.soak", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="10k changes, about 5 minutes")
    p.add_argument("--changes", type=int, help="changes (default 100000, quick 10000)")
    p.add_argument("--ids", type=int, help="ids (default 10000, quick 1000)")
    p.add_argument("--rate", type=float, help="offered changes/s (default 100, quick 80)")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--quiet-s", type=float, help="quiet window (default 60, quick 20)")
    p.add_argument("--drain-s", type=float, default=600, help="longest wait to drain")
    p.add_argument("--poll-s", type=float, default=5, help="the poller's interval")
    p.add_argument("--rss-limit-mb", type=float, default=1024)
    env = os.environ.get
    p.add_argument("--api-port", type=int, default=int(env("CDCSYNC_SOAK_API_PORT", "8967")))
    p.add_argument("--web-port", type=int, default=int(env("CDCSYNC_SOAK_WEB_PORT", "6097")),
                   help="the first worker's; the second takes the next")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="leave table, connector and topics")
    p.add_argument("--out", type=Path, help="JSON file (default soak/results/<run>.json)")
    add_config_option(p)
    a = p.parse_args(argv)
    a.changes = a.changes or (10_000 if a.quick else 100_000)
    a.ids = a.ids or (1_000 if a.quick else 10_000)
    a.rate = a.rate or (80 if a.quick else 100)
    a.quiet_s = a.quiet_s or (20 if a.quick else 60)
    return a


def _progress(t0: float, loader: Loader, faults: FaultRunner, reader: collect.TopicReader) -> str:
    with_outcome = len(reader.records) - len(reader.pending())
    return (f"  {time.monotonic() - t0:6.0f}s  load {loader.done:,}/{loader.total:,}  "
            f"faults {len(faults.done)}/{len(faults.schedule)}  "
            f"records {len(reader.records):,}, with an outcome {with_outcome:,}")  # fmt: skip


class Soak:
    """One run: its settings, names, processes and what it found."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a, self.stack = a, StackSettings()
        self.kafka = BenchKafka.of(self.stack, a.config)
        self.names = setup.SoakNames(new_run_id())
        self.run_dir = HERE / "results" / self.names.run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.api: RefApiProcess | None = None
        self.workers: list[WorkerProcess] = []
        self.report: dict[str, Any] = {
            "run": self.names.run_id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_avg_at_start": os.getloadavg()},
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        }  # fmt: skip

    def prepare(self) -> None:
        a, stack, names = self.a, self.stack, self.names
        print(f"setup: table {setup.TABLE}, connector {names.connector}, topics "
              f"{names.prefix}.*; logs in {self.run_dir}", flush=True)  # fmt: skip
        ensure_stack(stack)
        self.api = RefApiProcess(a.api_port, 0, self.run_dir / "refapi.log")
        setup.create(stack, self.kafka, names, self.run_dir)
        for i in range(2):
            path = setup.write_config(stack, self.kafka, names, self.run_dir, worker=i,
                                      web_port=a.web_port + i, api_url=self.api.url,
                                      poll_s=a.poll_s)  # fmt: skip
            self.workers.append(WorkerProcess(path, self.run_dir / f"worker-{i}.log"))
        start_group_at_end(self.kafka.bootstrap_servers, names.app_id, [names.entity_topic],
                           client=self.kafka.client_settings())  # fmt: skip
        for w in self.workers:
            start_worker(w)

    def run(self) -> int:
        a, stack, names = self.a, self.stack, self.names
        steps = build_workload(changes=a.changes, ids=a.ids, two_way=a.ids // 10, seed=a.seed)
        self.report["workload"] = counts(steps)
        t_start = time.monotonic()
        self.prepare()
        assert self.api is not None
        sampler = RssSampler({f"worker-{i}": w for i, w in enumerate(self.workers)})
        sampler.start()
        for rule in api_rules():
            httpx.post(f"{self.api.url}/_admin/faults", json=rule, timeout=10).raise_for_status()
        schedule = build_schedule(a.changes / a.rate)
        self.report["schedule"] = [asdict(f) for f in schedule]
        loader = Loader(stack, self.kafka, steps, rate=a.rate, api_url=self.api.url,
                        topic=names.entity_topic)  # fmt: skip
        faults = FaultRunner(stack, schedule, self.workers, api_url=self.api.url,
                             connector=names.connector)  # fmt: skip
        print(f"load: {loader.total:,} changes at {a.rate:g}/s; {len(schedule)} timed faults, "
              "API faults armed", flush=True)  # fmt: skip
        t0 = time.monotonic()
        loader.start()
        faults.start()
        reader = collect.TopicReader(self.kafka, names)
        last = 0.0
        while loader.is_alive():
            loader.join(1)
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                if kafka.healthy(stack, timeout=2):  # not while the broker restarts
                    reader.catch_up()
                print(_progress(t0, loader, faults, reader), flush=True)
        load_s = time.monotonic() - t0
        print("load done; the fault schedule runs to its end (at most 90 s more)", flush=True)
        faults.join(90)
        faults.stopping.set()
        faults.join()
        ensure_stack(stack)
        for w in self.workers:
            if w.proc is None or w.proc.poll() is not None:
                start_worker(w)
        httpx.delete(f"{self.api.url}/_admin/faults", timeout=10).raise_for_status()
        drain_s = self.drain(reader, loader)
        quiet = self.quiet(reader)
        sampler.stopping.set()
        collected = Collected(
            rows=collect.source_rows(stack), objects=collect.api_objects(self.api.url),
            edits=loader.edits, records=reader.records, outcomes=reader.outcomes,
            malformed=loader.malformed, quiet_writes=quiet, quiet_s=a.quiet_s,
            peak_rss_mb={k: round(v, 1) for k, v in sampler.peak_mb.items()},
            rss_limit_mb=a.rss_limit_mb,
        )  # fmt: skip
        reader.close()
        checks, figures = run_checks(collected)
        if lost := lost_edits(collected):  # the evidence, while the topics are still there
            traces = trace.timelines(self.kafka, self.names, lost)
            self.report["traces"] = {f"id {i}": lines for i, lines in traces.items()}
        stats = collect.api_stats(self.api.url)
        self.report |= {
            "durations_s": {"load": round(load_s), "drain": round(drain_s), "quiet": a.quiet_s,
                            "total": round(time.monotonic() - t_start)},
            "faults": fault_counts(faults.done),
            "faults_done": faults.done,
            "load_failures": loader.failures + ([repr(loader.error)] if loader.error else []),
            "malformed_injected": len(loader.malformed),
            "api": {"requests": stats["requests"]["total"],
                    "by_status": stats["requests"]["by_status"],
                    "faults_fired": stats["faults"]["fired"]},
            "outcomes": {"results": sum(o.kind == "result" for o in reader.outcomes),
                         "dead_letters": sum(o.kind != "result" for o in reader.outcomes),
                         "records": len(reader.records), **figures},
            "peak_rss_mb": collected.peak_rss_mb,
            "checks": [asdict(c) for c in checks],
            "passed": all(c.passed for c in checks) and not loader.error,
        }  # fmt: skip
        return 0 if self.report["passed"] else 1

    def drain(self, reader: collect.TopicReader, loader: Loader) -> float:
        """Until every record has an outcome, no new records come and every edit is back; an
        edit not back a minute after everything else settled (a dozen polls) will not come."""
        print("drain: faults cleared; waiting for every record's outcome", flush=True)
        t0, settled, stalled = time.monotonic(), 0, 0
        while time.monotonic() - t0 < self.a.drain_s:
            before = len(reader.records)
            reader.catch_up()
            rows = collect.source_rows(self.stack)
            by_id = {r["id"]: r["notes"] for r in rows.values()}
            edits_back = all(by_id.get(i) == v for i, v in loader.edits.items())
            idle = not reader.pending() and len(reader.records) == before
            settled = settled + 1 if idle and edits_back else 0
            stalled = stalled + 1 if idle and not edits_back else 0
            print(f"  drain {time.monotonic() - t0:5.0f}s: {len(reader.records):,} records, "
                  f"{len(reader.pending()):,} without an outcome; edits back: {edits_back}",
                  flush=True)  # fmt: skip
            if settled >= 2 or stalled * 5 >= EDITS_WAIT_S:
                break
            time.sleep(5)
        return time.monotonic() - t0

    def quiet(self, reader: collect.TopicReader) -> dict[str, int]:
        """Writes on both sides (and new records) during the quiet window."""
        assert self.api is not None
        print(f"quiet: watching {self.a.quiet_s:g}s for writes", flush=True)
        api0, rows0, records0 = (collect.api_writes(self.api.url),
                                 collect.row_versions(self.stack), len(reader.records))  # fmt: skip
        time.sleep(self.a.quiet_s)
        reader.catch_up()
        return {
            "api": collect.api_writes(self.api.url) - api0,
            "db": collect.changed_rows(rows0, collect.row_versions(self.stack)),
            "new_records": len(reader.records) - records0,
        }

    def tear_down(self) -> None:
        """Stop the workers and the API, put the stack back, and unless ``--keep`` drop what
        the run created."""
        for w in self.workers:
            w.stop()
        if self.api is not None:
            self.api.stop()
        ensure_stack(self.stack)
        if not self.a.keep:
            setup.cleanup(self.stack, self.kafka)


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print the table and save the report as JSON; 1 if a check failed."""
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: where each thread is
    soak = Soak(_args(argv))
    print(f"cdcsync soak {soak.names.run_id}", flush=True)
    try:
        code = soak.run()
    finally:
        soak.tear_down()
    report = soak.report
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = soak.a.out or (HERE / "results" / f"{soak.names.run_id}.json")
    out.write_text(json.dumps(report, indent=2, default=str))
    print(render(report))
    print(f"\nsaved {out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
