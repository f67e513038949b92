"""The audit trail of outgoing data: one record per call to an external system.

Providers report each call to an :class:`Auditor` (the worker's sends it to the
audit topic); the record names the recipient, the method, the entity and a
digest of the payload, never the payload or a credential.
"""

from __future__ import annotations

import hashlib
import time
from typing import Protocol

from cdcsync.schemas.events import AuditRecord
from cdcsync.sinks.base import call_counter

__all__ = ["Auditor", "audit_record", "payload_digest"]


class Auditor(Protocol):
    """Where audit records go; must not fail the call it records."""

    async def record(self, record: AuditRecord) -> None:
        """Keep one record (the worker's auditor sends it to the audit topic)."""
        ...


def payload_digest(body: bytes) -> str | None:
    """``sha256:<hex>`` of a request body; ``None`` for a call without one."""
    return f"sha256:{hashlib.sha256(body).hexdigest()}" if body else None


def audit_record(
    *,
    integration: str | None,
    provider: str,
    recipient: str,
    method: str,
    target: str,
    body: bytes,
) -> AuditRecord:
    """The record of one call, with the entity of the operation in progress, if any."""
    counter = call_counter.get()
    return AuditRecord(
        integration=integration,
        provider=provider,
        recipient=recipient,
        method=method,
        target=target,
        entity=counter.entity if counter else None,
        entity_id=counter.entity_id if counter else None,
        payload_digest=payload_digest(body),
        payload_bytes=len(body),
        sent_ms=int(time.time() * 1000),
    )
