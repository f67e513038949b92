"""The worker's Kafka producer: Faust's aiokafka producer, idempotent.

aiokafka sends a batch again when its answer is lost. Without idempotence, a batch the
broker had written before a restart is written twice: in CI a broker restart wrote one
result twice (``test_broker_restart_mid_stream_loses_nothing``). With it, the broker
drops the repeat by the producer's sequence numbers, as Kafka's own clients do by
default since 3.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import Producer as FaustProducer

__all__ = ["Producer"]


class Producer(FaustProducer):
    """Faust's aiokafka producer with ``enable_idempotence`` (and so ``acks=all``)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        if self.app.in_transaction:  # Faust's exactly-once settings already include it
            return super()._settings_extra()
        return {"acks": "all", "enable_idempotence": True}
