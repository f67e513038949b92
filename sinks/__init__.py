"""Sinks: the external systems the sync agents write to and read from.

An agent holds one :class:`Sink` per entity target and calls only its
methods; :func:`build_sink` turns a config's ``provider`` and ``settings``
into one. Each provider (``rest`` for JSON APIs configured by
:class:`RestSettings`) translates its failures into ``SinkTransientError`` or
``SinkPermanentError`` and counts its API calls through :func:`count_call`.
"""

from __future__ import annotations

from cdcsync.sinks.base import CallCounter, ExternalRecord, Sink, call_counter, count_call
from cdcsync.sinks.registry import Provider, SinkRegistry, build_sink, default_registry
from cdcsync.sinks.rest import RestSettings, RestSink

__all__ = [
    "CallCounter",
    "ExternalRecord",
    "Provider",
    "RestSettings",
    "RestSink",
    "Sink",
    "SinkRegistry",
    "build_sink",
    "call_counter",
    "count_call",
    "default_registry",
]
