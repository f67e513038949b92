"""The ``postgres`` provider: sync records into a table of a PostgreSQL database.

The target is one table of some database (a reporting database, another
service's schema) with a unique, non-null id column. The ``rowId`` of a row is
PostgreSQL's ``xmin`` system column as text: the id of the transaction that
wrote this version of the row. ``update``/``delete`` with ``expected_row_id``
only apply while ``xmin::text`` still matches, so a concurrent edit is a
``SinkConflictError`` rather than a lost update.

Caveats of ``xmin`` as a version: every UPDATE writes a new row version, so it
changes even when no value changed (a no-op ``UPDATE`` by anyone looks like an
edit to the poller); rows written by one transaction share one ``xmin``; it is
a 32-bit counter that wraps around, so after ~4 billion transactions an old
value can come back (an ABA false match, vanishingly rare between two reads of
one row); and a dump/restore or a logical copy of the table gives every row a
new ``xmin``, so the next poll sees all of them as changed.

- :mod:`~cdcsync.sinks.providers.postgres.settings`: the settings, the DSN and where it points.
- :mod:`~cdcsync.sinks.providers.postgres.statements`: the SQL (pure, unit-tested without a
  server), from ``psycopg.sql`` identifiers and ``%s`` placeholders only.
- :mod:`~cdcsync.sinks.providers.postgres.sink`: the Sink contract on the table.

The connection, its lock, reconnects and the translation of failures (a lost
connection is a ``SinkTransientError``, a refused statement a
``SinkPermanentError`` naming the table and columns, never values or the DSN)
are :class:`~cdcsync.sinks.delivery.pgconnection.PostgresConnection`'s.
:data:`provider` is what the ``cdcsync.providers`` entry point ``postgres`` names.
"""

from __future__ import annotations

from cdcsync.sinks.providers.postgres.settings import PgTableSettings
from cdcsync.sinks.providers.postgres.sink import PgTableSink
from cdcsync.sinks.registry import Provider

__all__ = ["PgTableSettings", "PgTableSink", "provider"]

provider = Provider(
    identifier="postgres",
    display_name="PostgreSQL table",
    description=(
        "Rows of one table of a PostgreSQL database (a reporting database, another "
        "service's schema), keyed by an id column, with xmin as the row version."
    ),
    settings_model=PgTableSettings,
    factory=lambda settings, context: PgTableSink(
        settings,
        environ=context.environ,
        auditor=context.auditor,
        integration=context.integration,
    ),
)
