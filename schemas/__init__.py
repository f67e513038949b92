"""Schemas: the shapes of everything that crosses a boundary.

Debezium envelopes coming in, the configuration file, the sync state kept in
tables, and the result and dead-letter events going out.
"""

from cdcsync.schemas.config import Config, EntityConfig, load_config
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
    "load_config",
    "parse_change",
]
