"""The exceptions cdcsync raises, under one root.

CdcsyncError
├── ConfigurationError      the YAML file or the environment is wrong
├── SchemaError             an event does not have the shape we expect
├── MappingError            a row cannot be mapped to the external payload
├── SinkError               an external system refused or failed a call
│   ├── SinkTransientError  worth retrying (timeouts, 5xx, 408, 429)
│   └── SinkPermanentError  retrying will not help (other 4xx)
├── DeliveryError           Kafka did not confirm a record the agent produced
├── ConnectError            Kafka Connect rejected or lost a connector
└── StackError              the local stack could not be started or reached
"""

from __future__ import annotations

__all__ = [
    "CdcsyncError",
    "ConfigurationError",
    "ConnectError",
    "DeliveryError",
    "MappingError",
    "SchemaError",
    "SinkConflictError",
    "SinkError",
    "SinkPermanentError",
    "SinkTransientError",
    "StackError",
]


class CdcsyncError(Exception):
    """Root of every error cdcsync raises on purpose."""


class ConfigurationError(CdcsyncError):
    """The configuration file or environment is invalid; the message says where."""


class SchemaError(CdcsyncError):
    """An event is not valid JSON of the expected shape (Debezium envelope, key)."""


class MappingError(CdcsyncError):
    """A source row cannot be turned into the external payload."""


class SinkError(CdcsyncError):
    """An external system call failed."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class SinkTransientError(SinkError):
    """A failure that may succeed when retried: timeout, connection error, 5xx, 408, 429."""


class SinkPermanentError(SinkError):
    """A failure that retrying will not fix: the request itself is wrong (4xx)."""


class SinkConflictError(SinkPermanentError):
    """The external object changed since the ``rowId`` we expected: both sides changed."""


class DeliveryError(CdcsyncError):
    """A result, dead letter or audit record was not delivered to Kafka, even when resent."""


class ConnectError(CdcsyncError):
    """Kafka Connect refused a connector config or reports it failed."""


class StackError(CdcsyncError):
    """A part of the local stack did not start, or its health check failed."""
