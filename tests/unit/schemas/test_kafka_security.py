"""app.security: validation, kafka-python arguments, Connect worker properties, broker listener."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cdcsync.connect.security import connect_client_properties
from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import Config
from cdcsync.schemas.kafka import KafkaSecurity
from cdcsync.stack.config_files import broker_properties
from cdcsync.stack.secure import worker_security_properties
from cdcsync.stack.settings import StackSettings

SCRAM = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "username": "svc",
    "password": {"env": "KAFKA_PASSWORD"},
    "ca_file": "/etc/kafka/ca.pem",
}


def test_default_is_plaintext_with_no_extra_client_settings() -> None:
    security = Config(entities={}).app.security
    assert security.security_protocol == "PLAINTEXT"
    assert security.sasl_settings() == {"security_protocol": "PLAINTEXT"}
    assert connect_client_properties(security) == {}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"security_protocol": "SASL_SSL", "username": "u"}, "needs password, sasl_mechanism"),
        ({"username": "u"}, "only apply to SASL_SSL or SASL_PLAINTEXT"),
        ({"ca_file": "/ca.pem"}, "only apply to SSL or SASL_SSL"),
        ({"security_protocol": "SSL", "cert_file": "/c.pem"}, "cert_file and key_file together"),
        ({**SCRAM, "sasl_mechanism": "OAUTHBEARER"}, "sasl_mechanism"),
    ],
)
def test_inconsistent_settings_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSecurity.model_validate(fields)


def test_client_arguments_carry_the_resolved_password() -> None:
    security = KafkaSecurity.model_validate(SCRAM)
    with pytest.raises(ConfigurationError, match="not resolved"):
        security.sasl_settings()
    kwargs = security.with_password("s3cret").sasl_settings()
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "s3cret",
    }
    assert "s3cret" not in repr(security.with_password("s3cret"))
    assert "s3cret" not in str(security.with_password("s3cret").model_dump())


def test_connect_properties_reference_the_secret_for_every_client() -> None:
    props = connect_client_properties(KafkaSecurity.model_validate(SCRAM))
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert props[f"{prefix}security.protocol"] == "SASL_SSL"
        assert props[f"{prefix}sasl.mechanism"] == "SCRAM-SHA-512"
        assert props[f"{prefix}sasl.jaas.config"] == (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            'username="svc" password="${env:KAFKA_PASSWORD}";'
        )
        assert props[f"{prefix}ssl.truststore.type"] == "PEM"
        assert props[f"{prefix}ssl.truststore.location"] == "/etc/kafka/ca.pem"
    assert props["config.providers"] == "env,dir"


def test_connect_properties_read_file_secrets_through_the_dir_provider() -> None:
    security = KafkaSecurity(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        username="svc",
        password={"file": "/run/secrets/kafka"},  # type: ignore[arg-type]
    )
    jaas = connect_client_properties(security)["producer.sasl.jaas.config"]
    assert jaas.startswith("org.apache.kafka.common.security.plain.PlainLoginModule")
    assert 'password="${dir:/run/secrets:kafka}"' in jaas


def test_broker_without_secure_is_unchanged(tmp_path: Path) -> None:
    plain = broker_properties(StackSettings(home=tmp_path))
    assert plain["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert not any("sasl" in key or "ssl" in key for key in plain)


def test_broker_with_secure_adds_a_sasl_ssl_listener(tmp_path: Path) -> None:
    props = broker_properties(StackSettings(home=tmp_path, secure=True, secure_port=9194))
    assert str(props["listeners"]).endswith(",SASL_SSL://127.0.0.1:9194")
    assert props["advertised.listeners"] == ("PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9194")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == (
        "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
    )
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == (
        tmp_path / "kafka" / "secure" / "broker.p12"
    )


def test_connect_worker_of_a_secure_stack_uses_the_sasl_ssl_listener(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path, secure=True, secure_port=9194)
    props = worker_security_properties(settings)
    assert props["bootstrap.servers"] == "127.0.0.1:9194"
    assert "${env:CDCSYNC_SECURE_PASSWORD}" in str(props["admin.sasl.jaas.config"])
    assert settings.connector_env()["CDCSYNC_SECURE_PASSWORD"] == "cdcsync-secret"
    assert "CDCSYNC_SECURE_PASSWORD" not in StackSettings(home=tmp_path).connector_env()
