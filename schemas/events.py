"""Events cdcsync emits for downstream consumers: results and dead letters.

Every consumed record ends as exactly one of these. Both carry
``schema_version`` so consumers can evolve with them.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "AuditRecord",
    "ConflictEvent",
    "DeadLetter",
    "ExternalRef",
    "Notification",
    "OperatorAction",
    "RawRecord",
    "SourcePosition",
    "SyncResult",
]

SCHEMA_VERSION = 1

Action = Literal[
    "create",  # external object created
    "update",  # external object updated (or adopted by natural key)
    "delete",  # external object deleted
    "mark_target",  # external object marked deleted (policy source_delete=mark)
    "pull",  # external change written into the source row
    "pull_delete",  # source row deleted after the external object was (target_delete=delete)
    "mark_source",  # source row marked (policy target_delete=mark)
    "park",  # both sides changed, policy manual: see the conflicts topic
    "finalize",  # the parent's finalize step ran after its children (associations)
    "skip",  # nothing to do; ``reason`` says why
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourcePosition(_Event):
    """Where the event was read: topic, partition and offset."""

    topic: str
    partition: int
    offset: int


class ExternalRef(_Event):
    """The external object an action touched."""

    type: str
    id: str | None
    link: str | None = None
    row_id: str | None = None


class SyncResult(_Event):
    """What was done for one change, on the results topic."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["result"] = "result"
    entity: str
    entity_id: str
    op: str | None
    #: Which side changed: "source" (PostgreSQL via Debezium) or "external" (poll, webhook).
    origin: Literal["source", "external"] = "source"
    action: Action
    reason: str
    source: SourcePosition
    external: ExternalRef | None = None
    api_calls: int = 0
    attempts: int = 1
    #: PostgreSQL commit time (Debezium ``source.ts_ms``), when known.
    committed_ms: int | None = None
    received_ms: int
    completed_ms: int
    #: Commit to external write, or receive to completion when the commit time is unknown.
    latency_ms: float


class RawRecord(_Event):
    """The original Kafka record, so a dead letter can be inspected and redriven."""

    key: str | None
    value: str | None
    #: "utf-8" when key/value are text, "base64" when they were not valid UTF-8.
    encoding: Literal["utf-8", "base64"] = "utf-8"

    @classmethod
    def from_bytes(cls, key: bytes | None, value: bytes | None) -> RawRecord:
        """Keep the bytes as text when they are UTF-8, else base64."""
        try:
            return cls(
                key=key.decode() if key is not None else None,
                value=value.decode() if value is not None else None,
            )
        except UnicodeDecodeError:
            enc = base64.b64encode
            return cls(
                key=enc(key).decode() if key is not None else None,
                value=enc(value).decode() if value is not None else None,
                encoding="base64",
            )


class DeadLetter(_Event):
    """An event cdcsync could not apply, with why and the original record."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["dead_letter"] = "dead_letter"
    entity: str
    entity_id: str | None
    #: Short machine-readable class: schema, mapping, sink_permanent, sink_transient, internal.
    reason: str
    error_type: str
    error: str
    attempts: int = 1
    source: SourcePosition
    original: RawRecord
    failed_ms: int
    details: dict[str, Any] = {}


class ConflictEvent(_Event):
    """Both sides changed and the policy is ``manual``: the entity is parked until resolved."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["conflict"] = "conflict"
    entity: str
    entity_id: str
    external: ExternalRef | None
    #: The source row mapped to external fields, and the external object's fields.
    source_version: dict[str, Any] | None
    target_version: dict[str, Any] | None
    source: SourcePosition
    detected_ms: int


class Notification(_Event):
    """Something a person should look at: an entity gave up after its retries, say."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["notification"] = "notification"
    level: Literal["info", "warning", "error"]
    entity: str
    entity_id: str | None
    message: str
    source: SourcePosition | None = None
    created_ms: int


class AuditRecord(_Event):
    """One outgoing call to an external system (``log_outgoing_data``), on the audit topic.

    It says who received what, never the data itself: the payload is kept as a
    SHA-256 digest and a size, so the trail can prove what was sent without
    becoming a second copy of it.
    """

    schema_version: int = SCHEMA_VERSION
    kind: Literal["audit"] = "audit"
    #: The configuration (``integrations:`` name) and its provider.
    integration: str | None
    provider: str
    #: Where the call went: scheme, host and port, or the database; never credentials.
    recipient: str
    #: The HTTP method, or the SQL statement kind for database providers.
    method: str
    #: The path or table called, without the query string.
    target: str
    entity: str | None
    entity_id: str | None
    #: ``sha256:<hex>`` of the bytes sent; ``None`` when the call carried no body.
    payload_digest: str | None
    payload_bytes: int
    sent_ms: int


class OperatorAction(_Event):
    """One state-changing call to the worker's endpoints (who, what, on which entities, result).

    On the audit topic beside :class:`AuditRecord`: refused attempts are
    recorded too, so the trail shows who tried what, never a token.
    """

    schema_version: int = SCHEMA_VERSION
    kind: Literal["operator_action"] = "operator_action"
    #: The token's name (``webhook:<entity>`` for a signed webhook, ``anonymous`` if none).
    actor: str
    #: ``viewer``, ``operator``, ``admin``, ``webhook``, or ``none`` when unauthenticated.
    role: str
    #: The method and route, e.g. ``POST /webhooks/{entity}``.
    action: str
    entity: str | None = None
    entity_ids: list[str] = []
    #: ``ok`` (2xx), ``refused`` (401/403/4xx) or ``failed`` (5xx), and the HTTP status.
    result: Literal["ok", "refused", "failed"]
    status: int
    detail: str | None = None
    at_ms: int
