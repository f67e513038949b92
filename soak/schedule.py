"""The soak's fault schedule: what goes wrong when, decided before the run (pure, no I/O).

Two kinds of fault. Timed ones, in order on one timeline: kill -9 of one of the two
workers every ``kill_every_s`` (alternating, each restarted at once), a Kafka Connect
restart every ``connect_every_s``, one broker restart half way, and a burst of 429s
with ``Retry-After`` every ``burst_every_s``. Standing ones, armed on the reference
API for the whole load: a share of 5xx, timeouts, dropped connections and writes whose
answer is lost (:func:`api_rules`). Malformed records are part of the workload
(:mod:`cdcsync.soak.workload`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Fault", "FaultKind", "api_rules", "build_schedule", "burst_rule"]

FaultKind = Literal["kill_worker", "restart_connect", "restart_broker", "api_429_burst"]
COLLECTION = "/api/v1/contacts"


@dataclass(frozen=True, slots=True)
class Fault:
    """One timed fault: ``kind`` at ``at_s`` seconds after the load starts (``worker``: which
    of the two workers a kill hits)."""

    at_s: float
    kind: FaultKind
    worker: int | None = None


def build_schedule(
    duration_s: float,
    *,
    kill_every_s: float = 20.0,
    connect_every_s: float = 120.0,
    burst_every_s: float = 30.0,
    broker_restarts: int = 1,
) -> list[Fault]:
    """Every timed fault within ``duration_s``, in time order.

    The broker restart sits half way between two kills, so the timeline runner (one
    fault at a time) is not late for either; a run shorter than one Connect period still
    gets one Connect restart, at a third of the way.
    """
    faults: list[Fault] = []
    n = 1
    while n * kill_every_s < duration_s:
        faults.append(Fault(n * kill_every_s, "kill_worker", worker=(n - 1) % 2))
        n += 1
    connect_at = [k * connect_every_s for k in range(1, int(duration_s // connect_every_s) + 1)]
    if not connect_at or connect_at[-1] >= duration_s:
        connect_at = [k for k in connect_at if k < duration_s] or [round(duration_s / 3, 1)]
    faults += [Fault(t + kill_every_s / 4, "restart_connect") for t in connect_at]
    for k in range(broker_restarts):
        half = duration_s * (k + 1) / (broker_restarts + 1)
        faults.append(Fault((half // kill_every_s + 0.5) * kill_every_s, "restart_broker"))
    n = 1
    while n * burst_every_s < duration_s:
        faults.append(Fault(n * burst_every_s + 1, "api_429_burst"))
        n += 1
    return sorted(faults, key=lambda f: (f.at_s, f.kind))


def api_rules(
    *,
    error_rate: float = 0.10,
    timeout_rate: float = 0.02,
    drop_rate: float = 0.01,
    lost_answer_rate: float = 0.01,
    timeout_ms: int = 12_000,
) -> list[dict[str, Any]]:
    """The reference API's standing fault rules (``POST /_admin/faults`` bodies), first
    match first: a lost answer on writes, a timeout (a delay past the client's 10 s), a
    dropped connection, a 5xx.

    Each rule draws on its own, so the shares compound slightly: 10% 5xx of what the
    earlier rules left is ~8.7% of all requests.
    """
    lost = [
        {"connection": "lost_answer", "method": m, "path": COLLECTION, "count": None,
         "rate": lost_answer_rate}
        for m in ("POST", "PUT", "DELETE")
    ]  # fmt: skip
    return [
        *lost,
        {"latency_ms": timeout_ms, "path": COLLECTION, "count": None, "rate": timeout_rate},
        {"connection": "reset", "path": COLLECTION, "count": None, "rate": drop_rate},
        {"status": 503, "path": COLLECTION, "count": None, "rate": error_rate},
    ]


def burst_rule(size: int = 25, retry_after_s: int = 2) -> dict[str, Any]:
    """A burst of 429s: the next ``size`` requests, each with ``Retry-After``."""
    return {"status": 429, "path": COLLECTION, "count": size, "retry_after": retry_after_s}
