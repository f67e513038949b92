"""Kafka Connect connector configs (JSON, one file per connector) and their registration.

The JSON files here are plain Kafka Connect documents (`{"name": ..., "config": {...}}`);
secrets and addresses come from the worker's environment via `${env:CDCSYNC_PG_*}`.
"""

from __future__ import annotations

from cdcsync.connect.register import (
    ConnectorConfig,
    connector_files,
    connector_status,
    list_connectors,
    load,
    register,
    unregister,
)

__all__ = [
    "ConnectorConfig",
    "connector_files",
    "connector_status",
    "list_connectors",
    "load",
    "register",
    "unregister",
]
