"""The history of a few entities, when a check fails: each record of the entity topic, each
outcome and each state write, by time, so a failure in CI carries its own evidence.

Read from the run's topics (the state changelog's open segment is never compacted, so
a short run keeps every write).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from kafka import TopicPartition

from cdcsync.bench.broker import BenchKafka
from cdcsync.demo.harness import end_offsets
from cdcsync.soak.setup import SoakNames

__all__ = ["describe", "timelines"]

#: At most this many entities are traced per failure; the rest have the same cause or not.
MAX_TRACED = 3


def _key_id(key: bytes | None) -> str | None:
    try:
        parsed = json.loads(key or b"")
    except ValueError:
        return None
    return str(parsed.get("id") if isinstance(parsed, dict) else parsed)


def describe(topic_kind: str, key: bytes | None, value: bytes | None) -> tuple[str | None, str]:
    """The entity id a record is about and one line saying what it is (pure)."""
    try:
        v: Any = json.loads(value) if value else None
    except ValueError:
        return _key_id(key), "malformed record"
    if topic_kind == "state":
        if v is None:
            return _key_id(key), "STATE tombstone"
        parked = [p.get("offset") for p in v.get("parked") or []]
        return _key_id(key), (
            f"STATE {v.get('status')} last={v.get('last_offset')} row={v.get('row_id')} "
            f"hash={(v.get('payload_hash') or '')[:8]} pulled={v.get('pulled_ms')} "
            f"pending={v.get('source_pending')} superseded={v.get('superseded')} "
            f"parked={parked}"
        )
    if not isinstance(v, dict):
        return _key_id(key), "tombstone" if v is None else "malformed record"
    if topic_kind == "outcome":
        src = v.get("source") or {}
        what = (f"{v.get('action')}: {v.get('reason')}" if v.get("kind") == "result"
                else f"DEAD LETTER {v.get('reason')}: {v.get('error')}")  # fmt: skip
        return str(v.get("entity_id")), f"  -> @{src.get('offset')} {v.get('origin')} {what}"
    if v.get("origin") == "external":
        notes = (v.get("fields") or {}).get("notes")
        return _key_id(key), f"EXT {v.get('change')} version={v.get('version')} notes={notes!r}"
    if v.get("origin") == "control":
        return _key_id(key), "retry control record"
    src, after = v.get("source") or {}, v.get("after") or {}
    return _key_id(key), (
        f"ROW op={v.get('op')} notes={after.get('notes')!r} committed={src.get('ts_ms')}"
    )


def _read(kafka: BenchKafka, topics: Iterable[str]) -> Iterator[Any]:
    consumer = kafka.consumer(group_id=None, enable_auto_commit=False)
    with contextlib.closing(consumer):
        parts = [TopicPartition(t, p) for t in topics
                 for p in sorted(consumer.partitions_for_topic(t) or ())]  # fmt: skip
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, 0)
        ends = end_offsets(consumer, parts)
        left = {tp for tp in parts if ends[tp] > 0}
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500, max_records=10000).items():
                yield from batch
                if batch and batch[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)


def timelines(kafka: BenchKafka, names: SoakNames, ids: Iterable[int]) -> dict[int, list[str]]:
    """Each id's records, outcomes and state writes in time order, one line each."""
    wanted = {str(i): i for i in list(ids)[:MAX_TRACED]}
    # topic -> (what it holds, its name in the lines); the soak's entity is "contact".
    kinds = {names.entity_topic: ("record", "entity"), names.results: ("outcome", "results"),
             names.dead_letters: ("outcome", "deadletters"),
             f"{names.app_id}-state_contact-changelog": ("state", "state")}  # fmt: skip
    lines: dict[int, list[tuple[int, str]]] = {i: [] for i in wanted.values()}
    for r in _read(kafka, kinds):
        kind, label = kinds[r.topic]
        entity, line = describe(kind, r.key, r.value)
        if entity in wanted:
            at = time.strftime("%H:%M:%S", time.gmtime(r.timestamp / 1000))
            text = f"{at}.{r.timestamp % 1000:03d} {label}[{r.partition}@{r.offset}] {line}"
            lines[wanted[entity]].append((r.timestamp, text))
    return {i: [text for _, text in sorted(rows)] for i, rows in lines.items()}
