"""Prometheus metrics of the worker, served at ``/metrics`` by ``streams.web``.

A module of its own below the agents and sinks that report into it.

The agent reports what happens through four plain functions, so it never
touches metric objects: :func:`observe_result`, :func:`observe_dead_letter`,
:func:`observe_retry` and :func:`observe_api_call`. Consumer lag is read at
scrape time from a callable the web module registers (:func:`set_lag_source`).
All metrics live in their own registry, so importing this module twice (tests,
reloads) never clashes with the process-wide default registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cdcsync.schemas.events import DeadLetter, SyncResult

__all__ = [
    "API_LATENCY",
    "CONFLICTS",
    "CONTENT_TYPE",
    "DEAD_LETTERS",
    "EVENTS",
    "GUARDS",
    "IN_FLIGHT",
    "PARKED",
    "POLLED",
    "REGISTRY",
    "RETRIES",
    "SYNC_LATENCY",
    "exposition",
    "last_write_ms",
    "observe_api_call",
    "observe_dead_letter",
    "observe_guard",
    "observe_parked",
    "observe_poll",
    "observe_result",
    "observe_retry",
    "set_in_flight",
    "set_lag_source",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter(
    "cdcsync_events",
    "Records that ended in a result, by entity and action (create, update, delete, skip).",
    ["entity", "action"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "cdcsync_dead_letters",
    "Records that ended in a dead letter, by entity and reason "
    "(schema, mapping, sink_permanent, sink_transient, internal).",
    ["entity", "reason"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "cdcsync_retries",
    "Retries of transient external-API failures, by entity.",
    ["entity"],
    registry=REGISTRY,
)
PARKED = Counter(
    "cdcsync_parked",
    "Events parked behind a failed event of the same entity (including the failed one).",
    ["entity"],
    registry=REGISTRY,
)
CONFLICTS = Counter(
    "cdcsync_conflicts",
    "Both sides changed and the policy was manual: the entity was parked for an operator.",
    ["entity"],
    registry=REGISTRY,
)
GUARDS = Counter(
    "cdcsync_guards",
    "Times a guard stopped writes: loop_suspected (an entity parked for repeating its writes) "
    "or mass_delete (a poll pass that would have deleted too much, deleting nothing).",
    ["entity", "guard"],
    registry=REGISTRY,
)
API_LATENCY = Histogram(
    "cdcsync_external_api_seconds",
    "Duration of external API calls, by entity and HTTP method.",
    ["entity", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
POLLED = Gauge(
    "cdcsync_poll_objects",
    "What this worker's last poll pass saw, by entity and kind: listed, published (changed), "
    "deleted, unknown (linked to no entity this worker knows of: ignored, or a row created).",
    ["entity", "kind"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "cdcsync_records_in_flight",
    "Records this worker took from the entity's topic and has not yet ended and acked.",
    ["entity"],
    registry=REGISTRY,
)
SYNC_LATENCY = Histogram(
    "cdcsync_sync_latency_seconds",
    "Commit in PostgreSQL (or receipt) to the end of the sync step, by entity and action.",
    ["entity", "action"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)

#: (topic, partition) -> records not yet processed by this worker.
LagSource = Callable[[], Mapping[tuple[str, int], int]]


class _LagCollector(Collector):
    """``cdcsync_consumer_lag`` computed at scrape time from the current lag source."""

    def __init__(self) -> None:
        self.source: LagSource | None = None

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "cdcsync_consumer_lag",
            "Records between this worker's position and the end of each assigned partition.",
            labels=["topic", "partition"],
        )
        if self.source is not None:
            try:
                lags = self.source()
            except Exception:  # a scrape must never fail because lag is unknown
                lags = {}
            for (topic, partition), lag in sorted(lags.items()):
                family.add_metric([topic, str(partition)], max(lag, 0))
        yield family


_LAG = _LagCollector()
REGISTRY.register(_LAG)


def set_lag_source(source: LagSource | None) -> None:
    """Use ``source`` to report consumer lag (``None``: report none)."""
    _LAG.source = source


#: entity -> when its last result that called the external API ended (this worker, ms).
_LAST_WRITE: dict[str, int] = {}


def last_write_ms(entity: str) -> int | None:
    """When this worker last completed a change of ``entity`` that called its API."""
    return _LAST_WRITE.get(entity)


#: (metric, label values) -> its child: ``labels()`` takes a lock and builds a key on every
#: call, a few percent of a busy worker's CPU; the label sets are few and fixed.
_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    child = _CHILDREN.get((id(metric), labels))
    if child is None:
        child = _CHILDREN[(id(metric), labels)] = metric.labels(*labels)
    return child


def observe_result(result: SyncResult) -> None:
    """Count one result and its commit-to-completion latency."""
    _child(EVENTS, result.entity, result.action).inc()
    if result.api_calls and result.action not in ("skip", "park"):
        _LAST_WRITE[result.entity] = result.completed_ms
    if result.action == "park":
        CONFLICTS.labels(result.entity).inc()
    _child(SYNC_LATENCY, result.entity, result.action).observe(result.latency_ms / 1000)


def observe_dead_letter(letter: DeadLetter) -> None:
    """Count one dead letter."""
    DEAD_LETTERS.labels(letter.entity, letter.reason).inc()


def observe_retry(entity: str) -> None:
    """Count one retry of a transient failure."""
    RETRIES.labels(entity).inc()


def observe_parked(entity: str) -> None:
    """Count one event parked behind a failure of its entity."""
    PARKED.labels(entity).inc()


def observe_guard(entity: str, guard: str) -> None:
    """Count one guard that stopped writes (``loop_suspected``, ``mass_delete``)."""
    GUARDS.labels(entity, guard).inc()


def observe_api_call(entity: str, method: str, seconds: float) -> None:
    """Record the duration of one external API call."""
    _child(API_LATENCY, entity, method.upper()).observe(seconds)


def observe_poll(entity: str, counts: Mapping[str, int]) -> None:
    """Report what one poll pass saw: kind -> objects (``listed``, ``unknown``, ...)."""
    for kind, count in counts.items():
        _child(POLLED, entity, kind).set(count)


def set_in_flight(entity: str, count: int) -> None:
    """Report how many records of ``entity`` are in flight in this worker."""
    _child(IN_FLIGHT, entity).set(count)


def exposition() -> bytes:
    """The Prometheus text exposition of every cdcsync metric."""
    return generate_latest(REGISTRY)
