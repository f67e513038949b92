"""The local stack: PostgreSQL, Kafka (KRaft) and Kafka Connect with Debezium, without Docker.

Jars come from Maven Central into a shared cache; state, logs and pid files live under
`StackSettings.home`. `up()` is idempotent and health-checked, `down()` stops only what `up`
started, `status()` reports each part. `python -m cdcsync.stack up|down|status` drives it.
"""

from __future__ import annotations

from cdcsync.stack.kafka import TopicSpec, ensure_topics
from cdcsync.stack.local import PartStatus, demo_defaults, down, format_status, status, up
from cdcsync.stack.postgres import apply_sql
from cdcsync.stack.settings import DEBEZIUM_VERSION, KAFKA_VERSION, StackSettings

__all__ = [
    "DEBEZIUM_VERSION",
    "KAFKA_VERSION",
    "PartStatus",
    "StackSettings",
    "TopicSpec",
    "apply_sql",
    "demo_defaults",
    "down",
    "ensure_topics",
    "format_status",
    "status",
    "up",
]
