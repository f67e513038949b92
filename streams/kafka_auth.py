"""``app.security`` for the worker's aiokafka clients, and the start-up check of the credentials.

Faust takes ``broker_credentials`` (``faust.SASLCredentials`` or
``faust.SSLCredentials``) and hands them to aiokafka; the bench's own aiokafka
clients take :func:`aiokafka_kwargs`. :func:`check_credentials` connects once
with the configured settings before anything starts, so a wrong password or an
untrusted certificate stops the process with a clear message instead of
clients retrying forever.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import faust
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from cdcsync.errors import ConfigurationError
from cdcsync.operators.kafka_clients import ssl_context
from cdcsync.schemas.config import Config
from cdcsync.schemas.kafka import KafkaSecurity

__all__ = ["aiokafka_kwargs", "broker_credentials", "check_credentials"]

_AUTH_ERRORS = (SaslAuthenticationFailed, AuthenticationFailedError)


def broker_credentials(security: KafkaSecurity) -> faust.types.auth.CredentialsT | None:
    """Faust's ``broker_credentials`` for these settings (``None``: PLAINTEXT)."""
    context = ssl_context(security)
    if security.sasl:
        return faust.SASLCredentials(
            username=security.username,
            password=security.password_value(),
            mechanism=security.sasl_mechanism,
            ssl_context=context,
        )
    return None if context is None else faust.SSLCredentials(context)


def aiokafka_kwargs(security: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and client."""
    kwargs = security.sasl_settings()
    if security.tls:
        kwargs["ssl_context"] = ssl_context(security)
    return kwargs


def _hosts(broker: str) -> list[tuple[str, int]]:
    hosts = []
    for part in broker.replace(",", ";").split(";"):
        part = part.strip().split("://", 1)[-1].rstrip("/")
        if part:
            host, _, port = part.rpartition(":")
            hosts.append((host or part, int(port) if host else 9092))
    return hosts


def _refused(security: KafkaSecurity, where: str, exc: Exception) -> ConfigurationError:
    if isinstance(exc, UnsupportedSaslMechanismError):
        return ConfigurationError(
            f"app.security.sasl_mechanism: the broker at {where} does not offer "
            f"{security.sasl_mechanism} ({exc}); use one it enables"
        )
    if isinstance(exc, _AUTH_ERRORS):
        secret = security.password.describe() if security.password else "app.security.password"
        return ConfigurationError(
            f"Kafka refused the SASL credentials for user {security.username} "
            f"({security.sasl_mechanism}) at {where}: check app.security.username and the "
            f"password in {secret}"
        )
    return ConfigurationError(
        f"TLS with the broker at {where} failed ({exc or type(exc).__name__}): check "
        "app.security.ca_file (the CA that signed the broker's certificate), cert_file and "
        f"key_file, and that the address is the broker's {security.security_protocol} listener"
    )


async def _probe(security: KafkaSecurity, host: str, port: int, timeout_s: float) -> None:
    kwargs = aiokafka_kwargs(security)
    conn = await asyncio.wait_for(
        create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **kwargs), timeout_s
    )
    conn.close()


def check_credentials(config: Config, *, timeout_s: float = 10.0) -> None:
    """Connect once to a bootstrap broker with ``app.security``; ConfigurationError if it
    refuses the credentials or the certificate. PLAINTEXT and unreachable brokers pass
    (the clients report and retry those themselves).
    """
    security = config.app.security
    if security.security_protocol == "PLAINTEXT":
        return
    for host, port in _hosts(config.app.broker):
        where = f"{host}:{port}"
        try:
            asyncio.run(_probe(security, host, port, timeout_s))
        except (*_AUTH_ERRORS, UnsupportedSaslMechanismError, ssl.SSLError) as exc:
            raise _refused(security, where, exc) from None
        except (ConnectionRefusedError, TimeoutError, socket.gaierror, KafkaError):
            continue  # not reachable: try the next one
        except OSError as exc:  # the port answers, but not in this protocol
            raise _refused(security, where, exc) from None
        return
