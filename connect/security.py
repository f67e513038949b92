"""The Kafka Connect worker's client settings from ``app.security``, secrets as references.

A Connect worker talks to Kafka through four clients: its own (group membership
and the config, offset and status topics) and the ``producer.``, ``consumer.``
and ``admin.`` ones its connectors use (Debezium writes through the producer and
creates topics through the admin). Each gets the same settings. The password is
never written out: ``{env: X}`` becomes ``${env:X}`` and ``{file: /d/name}``
becomes ``${dir:/d:name}``, which the worker's config providers resolve.
"""

from __future__ import annotations

from pathlib import PurePath

from cdcsync.schemas.integrations import SecretRef
from cdcsync.schemas.kafka import KafkaSecurity

__all__ = ["CLIENT_PREFIXES", "CONFIG_PROVIDERS", "connect_client_properties", "secret_reference"]

#: Prefixes of the worker's own client ("") and of its connectors' clients.
CLIENT_PREFIXES = ("", "producer.", "consumer.", "admin.")
#: Config providers the references need (the local stack's worker already has ``env``).
CONFIG_PROVIDERS = {
    "config.providers": "env,dir",
    "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
    "config.providers.dir.class": "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
}
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def secret_reference(ref: SecretRef) -> str:
    """A config-provider reference to the secret (``${env:X}`` or ``${dir:D:F}``)."""
    if ref.env is not None:
        return f"${{env:{ref.env}}}"
    assert ref.file is not None
    path = PurePath(ref.file)
    return f"${{dir:{path.parent}:{path.name}}}"


def _client(security: KafkaSecurity) -> dict[str, str]:
    props: dict[str, str] = {"security.protocol": security.security_protocol}
    if security.sasl:
        assert security.sasl_mechanism is not None and security.password is not None
        module = _LOGIN_MODULES[security.sasl_mechanism]
        password = secret_reference(security.password)
        props["sasl.mechanism"] = security.sasl_mechanism
        props["sasl.jaas.config"] = (
            f'{module} required username="{security.username}" password="{password}";'
        )
    if security.tls:
        props["ssl.endpoint.identification.algorithm"] = "https" if security.check_hostname else ""
        if security.ca_file:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = security.ca_file
        if security.cert_file and security.key_file:
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.certificate.chain"] = secret_reference(
                SecretRef(file=security.cert_file)
            )
            props["ssl.keystore.key"] = secret_reference(SecretRef(file=security.key_file))
    return props


def connect_client_properties(security: KafkaSecurity) -> dict[str, str]:
    """Worker properties giving the worker and its connectors' clients these settings."""
    client = _client(security)
    if client == {"security.protocol": "PLAINTEXT"}:
        return {}
    props = {f"{prefix}{key}": value for prefix in CLIENT_PREFIXES for key, value in client.items()}
    return {**props, **CONFIG_PROVIDERS}
