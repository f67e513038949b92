"""Stack settings come from CDCSYNC_* variables and agree with the pinned Maven poms."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from cdcsync.stack import settings as stack_settings
from cdcsync.stack.maven import pom_path
from cdcsync.stack.settings import StackSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CDCSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    s = StackSettings()
    assert s.home == tmp_path / ".cdcsync"
    assert s.cache == tmp_path / "xdg" / "cdcsync"
    assert (s.pg_host, s.pg_port, s.pg_db, s.pg_user) == ("127.0.0.1", 55432, "cdcsync", "cdcsync")
    assert s.pg_password.get_secret_value() == "cdcsync"
    assert (s.kafka_port, s.controller_port, s.connect_port, s.partitions) == (9092, 9093, 8083, 4)
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.connect_url == "http://127.0.0.1:8083"


def test_env_overrides_and_relative_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CDCSYNC_HOME", "state")
    monkeypatch.setenv("CDCSYNC_KAFKA_PORT", "19092")
    monkeypatch.setenv("CDCSYNC_PG_PASSWORD", "s3cret")
    s = StackSettings()
    assert s.home == tmp_path / "state"
    assert s.bootstrap_servers == "127.0.0.1:19092"
    assert "s3cret" not in repr(s)
    assert s.connector_env()["CDCSYNC_PG_PASSWORD"] == "s3cret"


def test_pg_dsn(tmp_path: Path) -> None:
    s = StackSettings(home=tmp_path, pg_port=5999)
    dsn = conninfo_to_dict(s.pg_dsn())
    assert dsn == {
        "host": "127.0.0.1",
        "port": "5999",
        "dbname": "cdcsync",
        "user": "cdcsync",
        "password": "cdcsync",
    }
    extra = conninfo_to_dict(s.pg_dsn(dbname="postgres", connect_timeout=3))
    assert (extra["dbname"], extra["connect_timeout"]) == ("postgres", "3")


def test_connector_env_covers_every_env_placeholder_of_the_connector() -> None:
    repo = Path(stack_settings.__file__).parents[1]
    text = (repo / "connect" / "cdcsync-postgres.json").read_text()
    used = set(re.findall(r"\$\{env:([A-Z0-9_]+)\}", text))
    assert used <= set(StackSettings().connector_env())


def _pom_property(kind: str, name: str) -> str:
    match = re.search(rf"<{re.escape(name)}>([^<]+)</", pom_path(kind).read_text())
    assert match, f"{name} missing from {kind} pom"
    return match.group(1)


def test_poms_pin_the_same_versions_as_settings() -> None:
    assert _pom_property("kafka", "kafka.version") == stack_settings.KAFKA_VERSION
    assert _pom_property("connect", "kafka.version") == stack_settings.KAFKA_VERSION
    assert _pom_property("kafka", "slf4j.version") == stack_settings.SLF4J_VERSION
    assert _pom_property("connect", "slf4j.version") == stack_settings.SLF4J_VERSION
    assert _pom_property("debezium", "debezium.version") == stack_settings.DEBEZIUM_VERSION
    assert f"kafka_{stack_settings.SCALA_VERSION}" in pom_path("kafka").read_text()


def test_cluster_nodes_ports_and_replication(tmp_path: Path) -> None:
    s = StackSettings(home=tmp_path, kafka_port=29092, controller_port=29093, brokers=3)
    assert list(s.nodes) == [1, 2, 3]
    assert [s.node_ports(n) for n in s.nodes] == [(29092, 29093), (29192, 29193), (29292, 29293)]
    assert s.bootstrap_servers == "127.0.0.1:29092,127.0.0.1:29192,127.0.0.1:29292"
    assert s.node_dir(1) == s.kafka_dir and s.node_dir(3) == s.kafka_dir / "node-3"
    assert (s.replication_factor, s.min_insync_replicas) == (3, 2)
    two = StackSettings(home=tmp_path, brokers=2)
    assert (two.replication_factor, two.min_insync_replicas) == (2, 1)
    five = StackSettings(home=tmp_path, brokers=5)
    assert (five.replication_factor, five.min_insync_replicas) == (3, 2)
    one = StackSettings(home=tmp_path)
    assert (one.brokers, one.replication_factor, one.min_insync_replicas) == (1, 1, 1)


def test_cluster_ports_that_clash_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clashing ports"):
        StackSettings(home=tmp_path, kafka_port=9092, controller_port=9192, brokers=2)
    StackSettings(home=tmp_path, kafka_port=9092, controller_port=9192)  # one node: no clash
