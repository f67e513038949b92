"""``python -m cdcsync.bench --recovery N``: restart recovery of N entities' state, per store.

A state changelog is filled with N entities' states (the bytes the agent writes),
then one worker starts on it three times: with ``memory://`` (replays the whole
changelog), with ``rocksdb://`` on an empty data directory (cold: replays it into
RocksDB) and again with that directory kept (warm: reads only what is newer than
the offsets RocksDB stored). Each start is timed until the worker says Ready, with
Faust's own "Recovery complete" span beside it. Topics, group and app id are the
run's own (``cdcsync-recovery-<run>``), so the shared stack and other benches are
left alone; they are deleted at the end.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import yaml
from kafka.errors import KafkaError

from cdcsync.bench.broker import BenchKafka
from cdcsync.bench.cdcsync_run import BenchWorker, produce_synthetic_state, write_config
from cdcsync.bench.workload import new_run_id
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.config import load_config
from cdcsync.streams.topics import topic_specs

__all__ = ["STARTS", "run_recovery"]

#: The starts timed, in order: label -> store URL and whether the data directory is wiped first.
STARTS: dict[str, tuple[str, bool]] = {
    "memory": ("memory://", True),
    "rocksdb_cold": ("rocksdb://", True),
    "rocksdb_warm": ("rocksdb://", False),
}


def _config(
    run_dir: Path, app_id: str, *, kafka: BenchKafka, store: str, web_port: int, partitions: int
) -> Path:
    """The bench's contact configuration on this run's own topics, with ``store``."""
    path = write_config(
        run_dir,
        app_id,
        kafka=kafka,
        api_url="http://127.0.0.1:9",  # never called: the entity topic stays empty
        web_port=web_port,
        partitions=partitions,
        connections=1,
        max_in_flight=500,
        bulk_max=0,
    )
    data = yaml.safe_load(path.read_text())
    data["app"]["store"] = store
    data["topics"] = {
        key: f"{app_id}.{key}"
        for key in ("results", "dead_letters", "conflicts", "notifications", "audit")
    } | {"partitions": partitions}
    data["entities"]["contact"]["topic"] = f"{app_id}.contact"
    path.unlink()
    path = path.with_name(f"{app_id}.{store.removesuffix('://')}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _start(run_dir: Path, kafka: BenchKafka, config: Path, label: str) -> dict[str, Any]:
    """Start a worker on ``config``, time it to Ready, stop it; its figures."""
    worker = BenchWorker(kafka, config, run_dir, label)
    try:
        ready_s = worker.start()
        rss_kb = _rss_kb(worker.pid)
    finally:
        worker.stop()
    print(f"  {label}: ready in {ready_s:.1f}s (recovery {worker.recovery_s}s)", flush=True)
    return {"ready_s": round(ready_s, 2), "recovery_s": worker.recovery_s, "rss_mb": rss_kb // 1024}


def _rss_kb(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _dir_mb(path: Path) -> float:
    """Size of a directory tree in MB."""
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return round(total / 1e6, 1)


def _delete_topics(kafka: BenchKafka, app_id: str) -> None:
    """Delete this run's topics (they all start with its app id), nothing else."""
    admin = kafka.admin(app_id)
    try:
        doomed = [t for t in admin.list_topics() if t.startswith(app_id)]
        if doomed:
            admin.delete_topics(doomed)
        admin.delete_consumer_groups([app_id])
    except KafkaError as exc:
        print(f"  cleanup: {exc}", flush=True)
    finally:
        admin.close()


def run_recovery(
    entities: int,
    *,
    kafka: BenchKafka | None = None,
    web_port: int,
    keep: bool = False,
    out: Path | None = None,
) -> dict[str, Any]:
    """Fill a changelog with ``entities`` states; time the three starts; save the report."""
    stack = StackSettings()
    kafka = kafka or BenchKafka.of(stack)
    run_id = new_run_id()
    app_id = f"cdcsync-recovery-{run_id}"
    run_dir = Path(__file__).resolve().parent / "results" / f"recovery-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"cdcsync bench recovery {run_id}: {entities} entities; logs in {run_dir}", flush=True)
    report: dict[str, Any] = {
        "run": run_id,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "entities": entities,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg(),
        },
    }
    configs = {
        store: _config(
            run_dir,
            app_id,
            kafka=kafka,
            store=store,
            web_port=web_port,
            partitions=stack.partitions,
        )
        for store in ("memory://", "rocksdb://")
    }
    try:
        report |= _measure(run_dir, kafka, configs, entities)
    finally:
        if not keep:
            _delete_topics(kafka, app_id)
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path = out or run_dir.with_suffix(".json")
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2), f"\nsaved {path}", sep="\n", flush=True)
    return report


def _measure(
    run_dir: Path, kafka: BenchKafka, configs: dict[str, Path], entities: int
) -> dict[str, Any]:
    """Create the topics, fill the changelog, then each start of :data:`STARTS` in order."""
    config = load_config(configs["memory://"])
    kafka.ensure_topics(topic_specs(config))
    changelog = config.changelog_topic("contact")
    partitions = config.topics.partitions
    figures: dict[str, Any] = {
        "produce_s": round(produce_synthetic_state(kafka, changelog, entities, partitions, None), 2)
    }
    print(f"  produced {entities} states into {changelog} in {figures['produce_s']}s", flush=True)
    datadir = Path(config.app.datadir)
    for label, (store, wipe) in STARTS.items():
        if wipe:
            _wipe(datadir)
        figures[label] = _start(run_dir, kafka, configs[store], label)
    figures["rocksdb_dir_mb"] = _dir_mb(datadir)
    return figures


def _wipe(datadir: Path) -> None:
    """Empty the worker's local state directory (its tables; the changelogs stay)."""
    for p in sorted(datadir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
