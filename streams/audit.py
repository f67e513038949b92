"""The worker's auditor: every outgoing call becomes one record on the audit topic."""

from __future__ import annotations

import logging

import faust

from cdcsync.agents import deliveries
from cdcsync.errors import SinkTransientError
from cdcsync.schemas.events import AuditRecord

__all__ = ["TopicAuditor"]

log = logging.getLogger(__name__)


class TopicAuditor:
    """Sends audit records to a topic, keyed by entity id; no record, no call."""

    def __init__(self, topic: faust.TopicT) -> None:
        self.topic = topic

    async def record(self, record: AuditRecord) -> None:
        """Queue the record with the producer before the call goes out."""
        try:
            await deliveries.send(  # confirmed with the batch of the call it records
                self.topic,
                key=record.entity_id.encode() if record.entity_id else None,
                value=record.model_dump_json().encode(),
            )
        except Exception as exc:
            # An unaudited call must not happen: fail it as transient, so it is retried.
            log.warning("audit topic %s unavailable: %s", self.topic.get_topic_name(), exc)
            raise SinkTransientError(
                f"the audit trail could not be written ({type(exc).__name__}); will retry"
            ) from exc
