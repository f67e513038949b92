"""Sinks: the external systems the sync agents write to and read from.

An agent holds one :class:`Sink` per entity target and calls only its
methods; providers (``rest``, ``postgres``, and any package's through the
``cdcsync.providers`` entry points, see :mod:`cdcsync.sinks.registry`) build
them from an integration's settings and secrets. Each translates its failures
into ``SinkTransientError`` or ``SinkPermanentError``, counts its calls through
:func:`count_call` and reports them to the audit trail.
"""

from __future__ import annotations

from cdcsync.sinks.base import CallCounter, ExternalRecord, Sink, call_counter, count_call
from cdcsync.sinks.registry import (
    Provider,
    ProviderContext,
    SinkRegistry,
    build_sink,
    default_registry,
)
from cdcsync.sinks.rest import RestSettings, RestSink

__all__ = [
    "CallCounter",
    "ExternalRecord",
    "Provider",
    "ProviderContext",
    "RestSettings",
    "RestSink",
    "Sink",
    "SinkRegistry",
    "build_sink",
    "call_counter",
    "count_call",
    "default_registry",
]
