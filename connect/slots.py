"""The connector's PostgreSQL replication slot: dropped when a connector is removed for good.

Slots outlive connectors; one left behind keeps WAL on the server and makes a new
connector of the same slot name resume old state.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

__all__ = ["drop_slot"]


def drop_slot(conn: psycopg.Connection[Any], slot: str, *, timeout_s: float = 30.0) -> None:
    """Drop ``slot`` once no walsender holds it; past ``timeout_s`` end the walsender (its
    connector is gone) and drop it then. Nothing to do when there is no such slot."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = conn.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", [slot]
        ).fetchone()
        if row is None:
            return
        if row[0] is None:
            conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
            return
        if time.monotonic() > deadline:
            conn.execute("SELECT pg_terminate_backend(%s)", [row[0]])
        time.sleep(0.3)
