"""Client settings from ``app.security``: one helper for every kafka-python client.

The operator tools, the demo harness, the examples and the bench build their
kafka-python clients with :func:`kafka_python_settings`; the worker's aiokafka
clients get the same TLS context (:func:`ssl_context`) through
``cdcsync.streams.kafka_auth``. The context is made here, not by kafka-python,
whose own one is built with a deprecated protocol constant.
"""

from __future__ import annotations

import ssl
from typing import Any

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.kafka import KafkaSecurity

__all__ = ["kafka_python_settings", "ssl_context"]


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL (CA file, client certificate), else ``None``."""
    if not security.tls:
        return None
    try:
        context = ssl.create_default_context(cafile=security.ca_file)
        if security.cert_file and security.key_file:
            context.load_cert_chain(security.cert_file, security.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"app.security: cannot load the TLS files (ca_file {security.ca_file}, cert_file "
            f"{security.cert_file}, key_file {security.key_file}): {exc}"
        ) from exc
    context.check_hostname = security.check_hostname
    return context


def kafka_python_settings(security: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments for kafka-python's consumer, producer and admin client."""
    kwargs = security.sasl_settings()
    if security.tls:
        kwargs["ssl_context"] = ssl_context(security)
    return kwargs
