"""Carrying out the fault schedule on the running stack, in a thread, and putting it back.

One fault at a time, each at its time (or as soon as the one before has finished): a
worker killed with SIGKILL and started again, Kafka Connect stopped and started (the
connector resumes from its offsets), the broker stopped and started, a burst of 429s
armed on the reference API. What was done, when and how long it took is kept for the
report.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from cdcsync.connect.register import wait_running
from cdcsync.demo.harness import WorkerProcess
from cdcsync.errors import StackError
from cdcsync.soak.schedule import Fault, burst_rule
from cdcsync.stack import connect_worker, kafka
from cdcsync.stack.processes import is_alive
from cdcsync.stack.settings import StackSettings

__all__ = ["POSTGRES_CONNECTOR", "FaultRunner", "RssSampler", "ensure_stack", "start_worker"]

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"


def _quiet(_message: str) -> None:
    pass


def start_worker(worker: WorkerProcess, *, attempts: int = 3) -> None:
    """Start a worker, again if it does not come up (the broker may be restarting)."""
    for attempt in range(attempts):
        try:
            worker.start(timeout_s=180)
            return
        except StackError:
            worker.stop(kill=True)
            if attempt == attempts - 1:
                raise


def ensure_stack(stack: StackSettings) -> list[str]:
    """Start the broker and Kafka Connect if they are down; what had to be started."""
    started = []
    if not kafka.healthy(stack):
        pid = kafka.pidfile(stack).live_pid()
        if pid is None:
            pid = kafka.launch(stack, stack.kafka_libs, _quiet)
        kafka.wait_healthy(stack, pid)
        started.append("kafka")
    if not connect_worker.healthy(stack):
        if connect_worker.pidfile(stack).live_pid() is None:
            connect_worker.start(stack, stack.connect_libs, stack.plugin_path,
                                 required=[POSTGRES_CONNECTOR], progress=_quiet)  # fmt: skip
        else:
            connect_worker.wait_healthy(stack, connect_worker.pidfile(stack).live_pid())
        started.append("connect")
    return started


class FaultRunner(threading.Thread):
    """Runs the timed faults against the stack, the two workers and the API until told to
    stop; ``done`` holds what happened to each."""

    def __init__(
        self, stack: StackSettings, schedule: list[Fault], workers: list[WorkerProcess], *,
        api_url: str, connector: str,
    ) -> None:  # fmt: skip
        super().__init__(name="soak-faults", daemon=True)
        self.stack, self.schedule, self.workers = stack, schedule, workers
        self.api_url, self.connector = api_url, connector
        self.stopping = threading.Event()
        self.done: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    def run(self) -> None:
        actions: dict[str, Callable[[Fault], None]] = {
            "kill_worker": self._kill_worker,
            "restart_connect": self._restart_connect,
            "restart_broker": self._restart_broker,
            "api_429_burst": self._burst,
        }
        for fault in self.schedule:
            delay = self.t0 + fault.at_s - time.monotonic()
            if self.stopping.wait(max(delay, 0)):
                return
            began = time.monotonic()
            entry: dict[str, Any] = {"kind": fault.kind, "planned_s": fault.at_s,
                                     "at_s": round(began - self.t0, 1)}  # fmt: skip
            if fault.worker is not None:
                entry["worker"] = fault.worker
            try:
                actions[fault.kind](fault)
                entry["ok"] = True
            except Exception as exc:  # recorded; the run checks the outcome
                entry |= {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
                print(f"  fault {fault.kind} failed: {entry['error']}", flush=True)
            entry["took_s"] = round(time.monotonic() - began, 1)
            self.done.append(entry)

    def _kill_worker(self, fault: Fault) -> None:
        worker = self.workers[fault.worker or 0]
        worker.stop(kill=True)
        start_worker(worker)

    def _restart_connect(self, _fault: Fault) -> None:
        connect_worker.stop(self.stack)
        connect_worker.start(self.stack, self.stack.connect_libs, self.stack.plugin_path,
                             required=[POSTGRES_CONNECTOR], progress=_quiet)  # fmt: skip
        wait_running(self.stack.connect_url, self.connector)

    def _restart_broker(self, _fault: Fault) -> None:
        kafka.stop(self.stack)
        pid = kafka.launch(self.stack, self.stack.kafka_libs, _quiet)
        kafka.wait_healthy(self.stack, pid)
        wait_running(self.stack.connect_url, self.connector)

    def _burst(self, _fault: Fault) -> None:
        answer = httpx.post(f"{self.api_url}/_admin/faults", json=burst_rule(), timeout=10)
        answer.raise_for_status()


class RssSampler(threading.Thread):
    """Samples each worker's resident memory every ``every_s``; ``peak_mb`` per worker."""

    def __init__(self, workers: dict[str, WorkerProcess], every_s: float = 1.0) -> None:
        super().__init__(name="soak-rss", daemon=True)
        self.workers, self.every_s = workers, every_s
        self.peak_mb: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.every_s):
            for name, worker in self.workers.items():
                proc = worker.proc
                if proc is None or not is_alive(proc.pid):
                    continue
                with contextlib.suppress(OSError, ValueError):
                    rss = _rss_mb(Path(f"/proc/{proc.pid}/status").read_text())
                    self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), rss)


def _rss_mb(status: str) -> float:
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError("no VmRSS")
