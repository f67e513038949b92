"""Mappers: turn a source row into the external system's payload."""

from cdcsync.mappers.fieldmap import FieldMap, payload_hash

__all__ = ["FieldMap", "payload_hash"]
