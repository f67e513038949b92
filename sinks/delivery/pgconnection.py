"""One PostgreSQL connection shared by concurrent callers: values in and out, reconnects, errors.

:class:`PostgresConnection` runs each operation on one async connection under a
lock, replaces a connection found broken, retries an idempotent operation once
on a fresh connection when a reused one turns out to be dead (e.g. after a
server restart), and translates failures at this boundary: a lost connection is
a ``SinkTransientError`` (the next call reconnects), a refused statement a
``SinkPermanentError`` naming the table and columns, never values or the DSN.
The source write-back (:mod:`cdcsync.sinks.writeback`) and the ``postgres``
provider (:mod:`cdcsync.sinks.providers.postgres`) both write through it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any, Self, TypeVar
from uuid import UUID

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from cdcsync.errors import (
    ConfigurationError,
    MappingError,
    SinkError,
    SinkPermanentError,
    SinkTransientError,
)

__all__ = ["Conn", "PostgresConnection", "adapt", "checked_columns", "json_friendly"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[dict[str, Any]]

#: SQLSTATE classes whose primary message names objects but never values:
#: 23 integrity (values are only in DETAIL), 42 syntax / undefined objects.
_SAFE_MESSAGE_CLASSES = ("23", "42")


# -- values (pure) -----------------------------------------------------------------------


def checked_columns(values: Mapping[str, Any], allowed: Collection[str], what: str) -> list[str]:
    """The columns of ``values`` in a stable order; MappingError if one is not ``allowed``."""
    refused = sorted(c for c in values if c not in allowed)
    if refused:
        raise MappingError(
            f"{what}: column(s) {refused} are not allowed to be written; allowed: {sorted(allowed)}"
        )
    return list(values)


def adapt(value: Any) -> Any:
    """A value ready for a placeholder: dicts (and lists holding dicts) go as ``jsonb``."""
    if isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
    ):
        return Jsonb(value)
    return value


def json_friendly(value: Any) -> Any:
    """Decimal -> plain string, UUID -> string, recursively in lists; the rest unchanged."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list):
        return [json_friendly(v) for v in value]
    return value


# -- the connection ----------------------------------------------------------------------


class PostgresConnection:
    """One async connection to the database holding table ``name``, shared by concurrent callers.

    Calls are serialised by a lock; a connection found broken is replaced on the
    next call, and idempotent calls retry once on a fresh connection when a
    reused one turns out to be dead (e.g. after a server restart).
    """

    def __init__(self, dsn: str, *, name: str, connect_timeout: float = 10.0) -> None:
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error:
            raise ConfigurationError(
                f"PostgreSQL {name}: the connection string is invalid"
            ) from None
        self._dsn = dsn
        self._secrets = [s for s in (dsn, str(params.get("password") or "")) if s]
        self._where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
        self.name = name
        self.connect_timeout = connect_timeout
        self._conn: Conn | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name} at {self._where})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection; the next call opens a new one."""
        async with self._lock:
            await self._drop()

    async def run(
        self,
        action: str,
        columns: Sequence[str],
        op: Callable[[Conn], Awaitable[T]],
        *,
        idempotent: bool = True,
    ) -> T:
        """Run ``op`` on the shared connection; reconnect once if ``idempotent``; translate errors.

        ``action`` and ``columns`` name the statement in error messages (never values).
        """
        async with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None or self._conn.closed or self._conn.broken
                try:
                    conn = await self._connection()
                    return await op(conn)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    await self._drop()
                    if attempt == 1 and idempotent and not fresh:
                        logger.info("%s: %s on a stale connection; reconnecting", self, action)
                        continue
                    raise self._translate(exc, action, columns) from None
                except psycopg.Error as exc:
                    if isinstance(exc, psycopg.InternalError):
                        await self._drop()
                    raise self._translate(exc, action, columns) from None
            raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self) -> Conn:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        await self._drop()
        self._conn = await psycopg.AsyncConnection.connect(
            self._dsn,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=max(1, round(self.connect_timeout)),
        )
        logger.debug("%s: connected", self)
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except psycopg.Error:  # closing a broken connection may fail too
                logger.debug("%s: error while closing", self, exc_info=True)

    def _translate(self, exc: psycopg.Error, action: str, columns: Sequence[str]) -> SinkError:
        """The SinkError for ``exc``: transient for connection trouble, permanent otherwise."""
        where = f"PostgreSQL {self.name}: {action} failed"
        if isinstance(
            exc, psycopg.OperationalError | psycopg.InterfaceError | psycopg.InternalError
        ):
            first = self._redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            detail = f"{type(exc).__name__}" + (f": {first}" if first else "")
            logger.warning("%s (%s)", where, detail)
            return SinkTransientError(f"{where} ({detail}); will reconnect")
        diag = exc.diag
        sqlstate = exc.sqlstate
        parts = [type(exc).__name__]
        if sqlstate:
            parts.append(f"SQLSTATE {sqlstate}")
        if diag.column_name:
            parts.append(f"column {diag.column_name!r}")
        elif columns:
            parts.append(f"columns written {list(columns)}")
        if diag.constraint_name:
            parts.append(f"constraint {diag.constraint_name!r}")
        if diag.datatype_name:
            parts.append(f"type {diag.datatype_name!r}")
        if diag.message_primary and (sqlstate or "")[:2] in _SAFE_MESSAGE_CLASSES:
            parts.append(self._redact(diag.message_primary))
        elif sqlstate is None and isinstance(exc, psycopg.ProgrammingError) and str(exc):
            # raised by psycopg itself (e.g. "cannot adapt type 'set'"): names types, not values
            parts.append(self._redact(str(exc).splitlines()[0]))
        message = f"{where}: " + "; ".join(parts)
        logger.warning("%s", message)
        return SinkPermanentError(message)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
