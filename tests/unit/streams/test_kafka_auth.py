"""The worker's Kafka security: loader, Faust credentials, and the start-up credentials check."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from cdcsync.errors import ConfigurationError
from cdcsync.operators.kafka_clients import kafka_python_settings
from cdcsync.schemas.config import Config
from cdcsync.schemas.kafka import KafkaSecurity
from cdcsync.streams.config import load_config, with_kafka_password
from cdcsync.streams.kafka_auth import aiokafka_kwargs, broker_credentials, check_credentials

CA = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")


def _config(broker: str, **security: object) -> Config:
    return Config.model_validate({"entities": {}, "app": {"broker": broker, "security": security}})


def test_loader_reads_the_password_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    path = tmp_path / "cdcsync.yaml"
    security = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "username": "svc",
        "password": {"file": str(tmp_path / "pw")},
    }
    path.write_text(yaml.safe_dump({"app": {"security": security}, "entities": {}}))
    assert load_config(path).app.security.password_value() == "from-file"


def test_loader_names_an_unset_variable() -> None:
    config = _config(
        "kafka://h:9092",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        username="u",
        password={"env": "CDCSYNC_TEST_UNSET_PASSWORD"},
    )
    with pytest.raises(ConfigurationError, match=r"app\.security\.password: the environment"):
        with_kafka_password(config)


def _sasl_ssl(mechanism: str, **more: Any) -> KafkaSecurity:
    """SASL_SSL as user svc with the test CA, its password read as "pw"."""
    settings = {"security_protocol": "SASL_SSL", "sasl_mechanism": mechanism, "username": "svc",
                "password": {"env": "X"}, "ca_file": str(CA), **more}  # fmt: skip
    return KafkaSecurity.model_validate(settings).with_password("pw")


def test_plaintext_gives_faust_no_credentials() -> None:
    assert broker_credentials(KafkaSecurity()) is None


def test_sasl_ssl_reaches_aiokafka_as_configured() -> None:
    security = _sasl_ssl("SCRAM-SHA-256")
    auth = credentials_to_aiokafka_auth(broker_credentials(security))
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("svc", "pw")
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert aiokafka_kwargs(security)["sasl_plain_password"] == "pw"


def test_ssl_only_gives_an_ssl_context() -> None:
    auth = credentials_to_aiokafka_auth(
        broker_credentials(KafkaSecurity(security_protocol="SSL", ca_file=str(CA)))
    )
    assert auth["security_protocol"] == "SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_a_missing_tls_file_is_a_configuration_error() -> None:
    security = KafkaSecurity(security_protocol="SSL", ca_file="/nonexistent/ca.pem")
    with pytest.raises(ConfigurationError, match="cannot load the TLS files"):
        broker_credentials(security)
    mtls = KafkaSecurity(security_protocol="SSL", cert_file="/no/c.pem", key_file="/no/k.pem")
    files = re.escape("cert_file /no/c.pem, key_file /no/k.pem")
    with pytest.raises(ConfigurationError, match=files):
        kafka_python_settings(mtls)


def test_kafka_python_gets_a_tls_context_and_the_sasl_user() -> None:
    security = _sasl_ssl("PLAIN", check_hostname=False)
    kwargs = kafka_python_settings(security)
    assert kwargs["sasl_plain_username"] == "svc" and kwargs["sasl_plain_password"] == "pw"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].check_hostname is False
    assert kafka_python_settings(KafkaSecurity()) == {"security_protocol": "PLAINTEXT"}


@pytest.fixture
def not_tls() -> Iterator[int]:
    """A port that accepts connections and closes them at once (not a TLS listener)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def test_check_skips_plaintext_and_unreachable_brokers() -> None:
    check_credentials(_config("kafka://127.0.0.1:1"))
    check_credentials(_config("kafka://127.0.0.1:1", security_protocol="SSL"), timeout_s=2)


def test_check_fails_fast_on_a_port_that_does_not_speak_tls(not_tls: int) -> None:
    config = _config(f"kafka://127.0.0.1:{not_tls}", security_protocol="SSL", ca_file=str(CA))
    with pytest.raises(ConfigurationError, match=re.escape(f"broker at 127.0.0.1:{not_tls}")):
        check_credentials(config, timeout_s=2)
