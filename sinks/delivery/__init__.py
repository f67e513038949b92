"""Delivery: the mechanics that carry a sink's calls to the external system, shared by providers.

- :mod:`~cdcsync.sinks.delivery.bulk`: writes of concurrent changes gathered into bulk calls.
- :mod:`~cdcsync.sinks.delivery.ratelimit`: an API's budget of calls per second and in flight.
- :mod:`~cdcsync.sinks.delivery.transport`: the HTTP transport and what its failures mean.
- :mod:`~cdcsync.sinks.delivery.sender`: an httpx client's requests built and sent straight
  to its transport.
- :mod:`~cdcsync.sinks.delivery.pgconnection`: one shared PostgreSQL connection, reconnects,
  failures translated.
- :mod:`~cdcsync.sinks.delivery.audit`: the audit trail, one record per outgoing call.

Import the module you need: each pulls in only its own library (aiohttp, psycopg, ...).
"""

from __future__ import annotations

__all__: list[str] = []
