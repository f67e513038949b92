"""Sinks: the external systems the sync agents write to and read from.

An agent holds one :class:`Sink` per entity target and calls only its
methods; providers (``rest``, ``postgres``, and any package's through the
``cdcsync.providers`` entry points, see :mod:`cdcsync.sinks.registry`) build
them from an integration's settings and secrets. Each translates its failures
into ``SinkTransientError`` or ``SinkPermanentError``, counts its calls through
:func:`count_call` and reports them to the audit trail.

- ``base``, ``registry``, ``targets``, ``secrets``: the interface the agents call, the
  providers by name, a configured target built into its sink, the secrets it reads.
- ``providers/``: the built-in providers, one package each (``rest``, ``postgres``).
- ``delivery/``: how calls reach the external system (bulk calls, rate limits, the HTTP
  transport, the PostgreSQL connection, the audit trail), shared by the providers.
- ``writeback``: the pull direction's writer into the *source* table
  (:class:`~cdcsync.sinks.writeback.PostgresWriter`).
"""

from __future__ import annotations

from cdcsync.sinks.base import CallCounter, ExternalRecord, Sink, call_counter, count_call
from cdcsync.sinks.providers.rest import RestSettings, RestSink
from cdcsync.sinks.registry import (
    Provider,
    ProviderContext,
    SinkRegistry,
    build_sink,
    default_registry,
)

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
