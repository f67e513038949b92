"""Summarise a py-spy raw (collapsed) profile of a worker into where its CPU went.

``python -m cdcsync.bench.profile_summary bench/results/<run>/profile-cdcsync.txt``
"""

from __future__ import annotations

import collections
import sys

__all__ = ["summarise"]

#: (label, substrings that all must appear in the stack); first match wins.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("other threads (Faust/aiokafka I/O)", ("ServiceThread",)),
    ("HTTP: httpx request INFO log", ("RestSink._send", "Logger.")),
    ("HTTP: httpcore pool scans", ("RestSink._send", "_assign_requests_to_connections")),
    ("HTTP: httpcore pool scans", ("RestSink._send", "has_expired")),
    ("HTTP: rest of the client", ("RestSink._send",)),
    ("logging: result lines", ("Logger.",)),
    ("emit result (pydantic + Faust send)", ("Emitter.result",)),
    ("state store (changelog send)", ("StateStore.store",)),
    ("parse (pydantic envelope)", ("parse_change",)),
    ("decide", ("decide",)),
    ("rest of the agent", ("_process_group",)),
    ("aiokafka (main thread)", ("aiokafka",)),
    ("Faust / mode / asyncio", ("",)),
]


def summarise(path: str) -> list[tuple[str, float]]:
    """(bucket, share of samples) from a ``py-spy record -f raw`` file, largest first."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            if not n.isdigit():
                continue
            total += int(n)
            label = next(b for b, subs in BUCKETS if all(s in stack for s in subs))
            counts[label] += int(n)
    return [(label, n / max(total, 1)) for label, n in counts.most_common()]


if __name__ == "__main__":
    for label, share in summarise(sys.argv[1]):
        print(f"{share:6.1%}  {label}")
