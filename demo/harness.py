"""Run a worker as a process and watch the result topics: shared by the demo and the tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from cdcsync.errors import StackError

__all__ = ["TopicWatcher", "WorkerProcess", "end_offsets", "start_group_at_end"]


def end_offsets(
    consumer: KafkaConsumer, parts: list[TopicPartition], *, timeout_s: float = 30.0
) -> dict[TopicPartition, int]:
    """``consumer.end_offsets(parts)``, retried while a just-created topic has no leader yet.

    kafka-python 2.2.15 then raises ``AttributeError`` ('NoneType' object has no
    attribute 'invalid_metadata', fetcher.py:262) instead of retrying.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return dict(consumer.end_offsets(parts))
        except AttributeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def start_group_at_end(
    bootstrap: str, group_id: str, topics: Iterable[str], *, client: Mapping[str, Any] | None = None
) -> None:
    """Commit a new consumer group's offsets at the topics' current end.

    A fresh group then starts with what comes next, yet a worker that crashes
    before its first commit resumes where the group stood, not at "latest".
    ``client``: more kafka-python settings (``operators.kafka_clients.kafka_python_settings``).
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False, **(client or {})
    )
    try:
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        ends = end_offsets(consumer, parts)
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in ends.items()})
    finally:
        consumer.close()


@dataclass
class WorkerProcess:
    """A ``cdcsync worker`` subprocess with its own config, env and log file."""

    config_path: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Start the worker and wait until Faust reports it ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, **self.env, "CDCSYNC_CONFIG": str(self.config_path)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cdcsync.streams", "worker", "-l", "info"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"worker exited with {self.proc.returncode}; see {self.log_path}")
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if b"Ready" in log.read():
                    return
            time.sleep(0.2)
        raise StackError(f"worker not ready after {timeout_s:.0f}s; see {self.log_path}")

    def stop(self, *, kill: bool = False, timeout_s: float = 30.0) -> None:
        """Stop gracefully (SIGTERM), or ``kill`` it with SIGKILL as a crash would."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class TopicWatcher:
    """Reads JSON events appended to some topics after the watcher was created."""

    def __init__(
        self, bootstrap: str, topics: Iterable[str], *, client: Mapping[str, Any] | None = None
    ) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **(client or {})
        )
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(self.consumer.partitions_for_topic(t) or ())
        ]
        self.consumer.assign(parts)
        for tp, end in end_offsets(self.consumer, parts).items():
            self.consumer.seek(tp, end)

    def collect(
        self,
        want: Callable[[str, dict[str, Any]], bool],
        count: int | None = None,
        *,
        until: Callable[[list[tuple[str, dict[str, Any]]]], bool] | None = None,
        timeout_s: float = 60.0,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Gather (topic, event) pairs accepted by ``want`` until ``count`` of them, or
        ``until(found)`` holds, or the timeout; returns what was found."""
        found: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout_s

        def done() -> bool:
            if until is not None:
                return until(found)
            return count is not None and len(found) >= count

        while not done() and time.monotonic() < deadline:
            for tp, records in self.consumer.poll(timeout_ms=200).items():
                for record in records:
                    event = json.loads(record.value)
                    if want(tp.topic, event):
                        found.append((tp.topic, event))
                        if on_event:
                            on_event(tp.topic, event)
        return found

    def close(self) -> None:
        """Leave the cluster."""
        self.consumer.close()
