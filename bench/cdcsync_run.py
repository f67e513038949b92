"""Run cdcsync itself for the bench: its configuration, its worker process, its results."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

from cdcsync.bench.broker import BenchKafka
from cdcsync.bench.workload import BENCH_TOPIC, end_offsets, fresh_topic
from cdcsync.demo.harness import WorkerProcess
from cdcsync.demo.harness import end_offsets as harness_end_offsets
from cdcsync.streams.config import load_config
from cdcsync.streams.topics import topic_specs

__all__ = [
    "BenchWorker",
    "Outputs",
    "changelog_stats",
    "copy_range",
    "proc_cpu_s",
    "read_events",
    "write_config",
]

RESULTS = "cdcsync.bench.results"
DEAD_LETTERS = "cdcsync.bench.deadletters"
OUTPUT_TOPICS = [RESULTS, DEAD_LETTERS, "cdcsync.bench.conflicts", "cdcsync.bench.notifications"]
#: The workers' API timeout: short, so the slow-API phase's held requests time out soon.
REQUEST_TIMEOUT_S = 3.0
MAPPING = {"firstName": "first_name", "lastName": "last_name", "email": "email", "phone": "phone"}


def write_config(
    run_dir: Path,
    app_id: str,
    *,
    kafka: BenchKafka,
    api_url: str,
    web_port: int,
    partitions: int,
    connections: int,
    max_in_flight: int,
    bulk_max: int,
    page_size: int = 100,
    topic: str = BENCH_TOPIC,
) -> Path:
    """The bench's configuration file: the demo's contact entity on the bench topics.

    ``bulk_max`` > 0 sends concurrent writes through the reference API's bulk endpoint;
    ``kafka`` gives the broker and its security; ``topic``: the entity topic it consumes.
    """
    bulk = {"bulk_path": "/api/v1/contacts/_bulk", "bulk_max": bulk_max} if bulk_max else {}
    data: dict[str, Any] = {
        "app": {
            "id": app_id,
            **kafka.app_settings(),
            "web_port": web_port,
            "datadir": str(run_dir / "faust" / app_id),
            "max_in_flight": max_in_flight,
        },
        "topics": {
            "results": RESULTS,
            "dead_letters": DEAD_LETTERS,
            "conflicts": OUTPUT_TOPICS[2],
            "notifications": OUTPUT_TOPICS[3],
            "partitions": partitions,
        },
        "entities": {
            "contact": {
                "topic": topic,
                "key": "id",
                "natural_key": ["email"],
                "mapping": MAPPING,
                "target": {
                    "provider": "rest",
                    "settings": {
                        "base_url": api_url,
                        "collection_path": "/api/v1/contacts",
                        "object_type": "contact",
                        "max_connections": connections,
                        "timeout_s": REQUEST_TIMEOUT_S,
                        "page_size": page_size,
                        # An ordinary listing filter (django-filter's ``__in``): the lookups
                        # before concurrent creates share a request, with bulk or without.
                        "find_many_param": "{field}__in",
                        **bulk,
                    },
                },
            }
        },
    }
    (run_dir / "faust" / app_id).mkdir(parents=True, exist_ok=True)
    path = run_dir / f"{app_id}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def commit_group(kafka: BenchKafka, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Start consumer group ``group`` at ``offsets`` of ``topic``."""
    consumer = kafka.consumer(group_id=group, enable_auto_commit=False)
    try:
        tp = functools.partial(TopicPartition, topic)
        consumer.commit({tp(p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    finally:
        consumer.close()


@dataclass
class Outputs:
    """Offsets of the result and dead-letter topics: where a phase starts reading them."""

    results: dict[int, int]
    dead_letters: dict[int, int]

    @classmethod
    def now(cls, kafka: BenchKafka) -> Outputs:
        return cls(end_offsets(kafka, RESULTS), end_offsets(kafka, DEAD_LETTERS))

    def count_since(self, kafka: BenchKafka) -> int:
        r, d = end_offsets(kafka, RESULTS), end_offsets(kafka, DEAD_LETTERS)
        return sum(r[p] - self.results.get(p, 0) for p in r) + sum(
            d[p] - self.dead_letters.get(p, 0) for p in d
        )

    def wait(self, kafka: BenchKafka, expected: int, *, stall_s: float = 60.0) -> int:
        """Wait for ``expected`` events; gives up after ``stall_s`` without progress."""
        last, last_change = -1, time.monotonic()
        while True:
            got = self.count_since(kafka)
            if got >= expected:
                return got
            if got != last:
                last, last_change = got, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                return got
            time.sleep(0.5)


def read_events(kafka: BenchKafka, topic: str, start: dict[int, int]) -> list[dict[str, Any]]:
    """Every JSON event of ``topic`` from ``start`` to its current end."""
    return [json.loads(r.value) for r in _records(kafka, topic, start) if r.value is not None]


def copy_range(
    kafka: BenchKafka, source: str, target: str, start: dict[int, int], end: dict[int, int]
) -> dict[int, int]:
    """Copy ``source``'s records from ``start`` to ``end`` into a fresh ``target``, partition
    for partition, byte for byte (headers too); ``target``'s end offsets.

    A worker draining the bench topic runs on into the steady phases' records after the
    range, on the CPU and connections the range still needs; a baseline stops at its end.
    On a topic of the range alone both process the same records and nothing else.
    """
    fresh_topic(kafka, target, len(end))
    producer = kafka.producer(linger_ms=20, batch_size=256 * 1024, acks="all")
    try:
        for r in _records(kafka, source, start, end):
            producer.send(target, key=r.key, value=r.value, partition=r.partition,
                          headers=list(r.headers or []))  # fmt: skip
        producer.flush()
    finally:
        producer.close()
    return end_offsets(kafka, target)


def _records(
    kafka: BenchKafka, topic: str, start: dict[int, int], end: dict[int, int] | None = None
) -> Iterator[ConsumerRecord]:
    """``topic``'s records from ``start`` to ``end`` (default: its current end)."""
    consumer = kafka.consumer(
        group_id=None, enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024
    )
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        if end is None:
            ends = harness_end_offsets(consumer, parts)
        else:
            ends = {tp: end.get(tp.partition, 0) for tp in parts}
        for tp in parts:
            consumer.seek(tp, start.get(tp.partition, 0))
        remaining = {tp for tp in parts if consumer.position(tp) < ends[tp]}
        while remaining:
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for r in records:
                    if r.offset < ends[tp]:
                        yield r
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()


def changelog_stats(kafka: BenchKafka, topic: str) -> dict[str, Any]:
    """Records, bytes and the size of the latest state per entity in a changelog topic."""
    latest: dict[bytes | None, int] = {}
    records = total = 0
    sample: str | None = None
    for record in _records(kafka, topic, {}):
        key, value = record.key, record.value
        records += 1
        size = len(key or b"") + len(value or b"")
        total += size
        latest[key] = size
        if sample is None and value:
            sample = value.decode()
    live = [s for s in latest.values() if s]
    return {
        "topic": topic,
        "records": records,
        "bytes": total,
        "entities": len(live),
        "bytes_per_entity": round(sum(live) / len(live), 1) if live else None,
        "sample_value": sample,
    }


class BenchWorker:
    """A cdcsync worker process on a bench configuration."""

    def __init__(self, kafka: BenchKafka, config_path: Path, run_dir: Path, name: str) -> None:
        self.kafka = kafka
        self.config_path = config_path
        self.config = load_config(config_path)
        self.log_path = run_dir / f"worker-{name}.log"
        self.proc = WorkerProcess(config_path=config_path, log_path=self.log_path)
        self.profiler: subprocess.Popen[bytes] | None = None
        #: Seconds from partition assignment to "Recovery complete" at the last start.
        self.recovery_s: float | None = None

    @property
    def changelog(self) -> str:
        return self.config.changelog_topic("contact")

    def prepare(self, start: dict[int, int] | None = None) -> None:
        """Create its topics; start its group at ``start`` offsets (default: the end)."""
        self.kafka.ensure_topics(topic_specs(self.config))
        topic = self.config.entities["contact"].topic
        commit_group(self.kafka, self.config.app.id, topic, start or end_offsets(self.kafka, topic))

    def start(self) -> float:
        """Start it; seconds until Faust said Ready (tables recovered)."""
        t0 = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, "CDCSYNC_CONFIG": str(self.config_path)}
        with self.log_path.open("ab") as log:
            self.proc.proc = subprocess.Popen(
                [sys.executable, "-m", "cdcsync.streams", "worker", "-l", "info"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        while time.monotonic() - t0 < 600:
            if self.proc.proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {self.log_path}")
            with self.log_path.open("rb") as f:
                f.seek(offset)
                text = f.read()
            if b"[^Worker]: Ready" in text:
                self.recovery_s = _recovery_seconds(text.decode(errors="replace"))
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after 600s; see {self.log_path}")

    def stop(self) -> None:
        self.stop_profile()
        self.proc.stop()

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    def start_profile(self, out: Path, *, seconds: int) -> None:
        """py-spy (if installed) on the worker for ``seconds``, as collapsed stacks."""
        self.profiler = py_spy(self.pid, out, seconds)

    def stop_profile(self) -> None:
        if self.profiler is not None:
            try:
                self.profiler.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.profiler.terminate()
            self.profiler = None


def _recovery_seconds(log: str) -> float | None:
    """Partition assignment to "Recovery complete", from the worker's log timestamps."""
    from datetime import datetime

    def stamp(marker: str) -> datetime | None:
        for line in log.splitlines():
            if marker in line and line.startswith("[20"):
                return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
        return None

    start, done = stamp("Executing _on_partitions_assigned"), stamp("Recovery complete")
    return round((done - start).total_seconds(), 2) if start and done else None


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def py_spy(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes] | None:
    """Sample ``pid`` with py-spy into ``out`` (raw collapsed stacks); None if unavailable."""
    import shutil

    exe = shutil.which("py-spy")
    if exe is None:
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "-p",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            "50",
            "-f",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def produce_synthetic_state(
    kafka: BenchKafka, topic: str, entities: int, partitions: int, like: str | None
) -> float:
    """Write ``entities`` state records shaped like ``like`` (a real state value) into a
    changelog topic; returns the seconds it took."""
    template: dict[str, Any] = json.loads(like) if like else {
        "external_id": "0123456789ab", "row_id": "0123456789abcdef", "superseded": [],
        "payload_hash": "0" * 64, "status": "synced", "last_error": None, "attempts": 0,
        "errors": [], "retry_at_ms": None, "parked": [], "last_partition": 0,
        "last_offset": 1, "updated_ms": int(time.time() * 1000),
    }  # fmt: skip
    producer = kafka.producer(linger_ms=20, batch_size=256 * 1024)
    t0 = time.monotonic()
    try:
        for i in range(entities):
            value = dict(template, external_id=f"{i:012x}", last_offset=i)
            producer.send(
                topic,
                key=json.dumps(str(i)).encode(),
                value=json.dumps(value).encode(),
                partition=i % partitions,
            )
        producer.flush()
    finally:
        producer.close()
    return time.monotonic() - t0
