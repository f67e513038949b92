"""Providers: the built-in kinds of external system, one package each, found by entry point.

- :mod:`~cdcsync.sinks.providers.rest`: one collection of a JSON REST API.
- :mod:`~cdcsync.sinks.providers.postgres`: one table of a PostgreSQL database.

Each package's ``provider`` object is what its ``cdcsync.providers`` entry point
names (see :mod:`cdcsync.sinks.registry`); a third-party package adds a
provider the same way. Nothing is imported here, so a provider is loaded only
when it is configured or listed.
"""

from __future__ import annotations

__all__: list[str] = []
