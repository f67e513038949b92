"""Operators: the tools people use to repair and observe a running sync.

Replay a time range of an entity topic, resync through a Debezium incremental
snapshot, inspect and redrive dead letters, show one entity's state, sync one
entity now, read the execution log and export the event schemas. Each module
keeps its pure part (parsing, filtering, shaping records) apart from the Kafka
and PostgreSQL I/O, so the pure part is tested without services; the CLI
commands in ``cdcsync.streams.commands`` are thin wrappers around them.
"""

from cdcsync.operators.common import OperatorError

__all__ = ["OperatorError"]
