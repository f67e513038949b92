"""The bench's and the soak's Kafka: one place gives every client and worker its security."""

from __future__ import annotations

import ast
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdcsync.bench import broker
from cdcsync.bench.broker import BenchKafka
from cdcsync.bench.cdcsync_run import write_config
from cdcsync.soak import setup as soak_setup
from cdcsync.stack import kafka as stack_kafka
from cdcsync.stack.kafka import TopicSpec
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.config import load_config

ROOT = Path(__file__).resolve().parents[3]
CA = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
PASSWORD = "bench-s3cret"


class Recorder:
    """Stands in for a Kafka client class: keeps the keyword arguments it was made with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Recorder:
        self.calls.append(kwargs)
        return self


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cdcsync configuration on two SASL_SSL brokers, its password in a relative file."""
    monkeypatch.chdir(tmp_path)
    Path("kafka.password").write_text(PASSWORD + "\n")
    security = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                "username": "bench", "password": {"file": "kafka.password"},
                "ca_file": str(CA)}  # fmt: skip
    app = {"broker": "kafka://k1:9096;k2:9096", "security": security}
    path = tmp_path / "secure.yaml"
    path.write_text(yaml.safe_dump({"app": app, "entities": {}}))
    return path


def assert_secured(kwargs: dict[str, Any]) -> None:
    assert kwargs["bootstrap_servers"] == "k1:9096,k2:9096"
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("bench", PASSWORD)
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


def test_without_config_the_local_plaintext_listener_as_before() -> None:
    kafka = BenchKafka.of(StackSettings(kafka_port=19876))
    assert kafka.bootstrap_servers == "127.0.0.1:19876"
    assert kafka.client_settings() == {"security_protocol": "PLAINTEXT"}
    assert kafka.app_settings() == {"broker": "kafka://127.0.0.1:19876"}


def test_every_client_kind_gets_the_configs_broker_and_security(
    secured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = BenchKafka.of(StackSettings(), secured)
    made = {name: Recorder() for name in ("KafkaConsumer", "KafkaProducer", "KafkaAdminClient")}
    for name, recorder in made.items():
        monkeypatch.setattr(broker, name, recorder)
    kafka.consumer(group_id=None)
    kafka.producer(acks="all")
    kafka.admin("cdcsync-soak")
    for recorder in made.values():
        assert_secured(recorder.calls[0])
    assert made["KafkaConsumer"].calls[0]["group_id"] is None
    assert made["KafkaAdminClient"].calls[0]["client_id"] == "cdcsync-soak"
    assert_secured(kafka.aiokafka_settings())


def test_topics_are_created_over_the_secured_listener(
    secured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = Recorder()
    admin.describe_topics = lambda: [  # type: ignore[attr-defined]
        {"topic": "cdcsync.bench_contact", "partitions": [0, 1], "error_code": 0}
    ]
    admin.close = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setattr(stack_kafka, "KafkaAdminClient", admin)
    BenchKafka.of(StackSettings(), secured).ensure_topics([TopicSpec("cdcsync.bench_contact", 2)])
    assert_secured(admin.calls[0])


def test_worker_configs_carry_app_security_with_the_password_as_a_reference(
    secured: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = BenchKafka.of(StackSettings(), secured)
    created: list[list[str]] = []
    monkeypatch.setattr(
        BenchKafka, "ensure_topics", lambda _self, specs: created.append([s.name for s in specs])
    )
    bench = write_config(tmp_path, "cdcsync-bench-x-live", kafka=kafka, api_url="http://a",
                         web_port=1, partitions=2, connections=1, max_in_flight=1,
                         bulk_max=0)  # fmt: skip
    names = soak_setup.SoakNames("x")
    soak = soak_setup.write_config(StackSettings(), kafka, names, tmp_path, worker=0,
                                   web_port=1, api_url="http://a", poll_s=1)  # fmt: skip
    assert names.entity_topic in created[0]  # the soak's topics made through the same Kafka
    for path in (bench, soak):
        text = path.read_text()
        assert PASSWORD not in text
        app = yaml.safe_load(text)["app"]
        assert app["broker"] == "kafka://k1:9096;k2:9096"
        assert app["security"]["password"] == {"file": str(tmp_path / "kafka.password")}
        loaded = load_config(path).app.security
        assert loaded.describe() == "SASL_SSL SCRAM-SHA-512 user bench"
        assert loaded.password_value() == PASSWORD
        assert loaded.ca_file == str(CA)


KAFKA_CLIENTS = {"KafkaConsumer", "KafkaProducer", "KafkaAdminClient", "admin_client",
                 "AIOKafkaConsumer", "AIOKafkaProducer", "ensure_topics"}  # fmt: skip


@pytest.mark.parametrize(
    "path",
    sorted(p for d in ("bench", "soak") for p in (ROOT / d).glob("*.py") if p.name != "broker.py"),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_no_bench_or_soak_client_bypasses_bench_kafka(path: Path) -> None:
    """Clients are made by BenchKafka; the aiokafka ones take its settings whole."""
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None)
        if name in KAFKA_CLIENTS:
            spread = [k.value for k in node.keywords if k.arg is None]
            assert name.startswith("AIOKafka"), f"{path.name}:{node.lineno} builds {name}"
            assert any("aiokafka_settings" in ast.unparse(s) for s in spread), (
                f"{path.name}:{node.lineno}: {name} without BenchKafka.aiokafka_settings()"
            )
