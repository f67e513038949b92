"""Schemas: the shapes of everything that crosses a boundary.

Debezium envelopes coming in, the configuration file, the sync state kept in
tables, and the result and dead-letter events going out. Pure shapes: no I/O and
no environment (``cdcsync.streams.config`` reads the file and the environment).
"""

from cdcsync.schemas.config import Config, EntityConfig
from cdcsync.schemas.envelope import ChangeEvent, Ignored, parse_change
from cdcsync.schemas.events import DeadLetter, ExternalRef, RawRecord, SourcePosition, SyncResult
from cdcsync.schemas.state import SyncState

__all__ = [
    "ChangeEvent",
    "Config",
    "DeadLetter",
    "EntityConfig",
    "ExternalRef",
    "Ignored",
    "RawRecord",
    "SourcePosition",
    "SyncResult",
    "SyncState",
    "parse_change",
]
