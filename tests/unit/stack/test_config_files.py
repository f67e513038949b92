"""The stack's config files render as Kafka, Connect and PostgreSQL expect."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cdcsync.stack.config_files import (
    ENV_CONFIG_PROVIDER,
    TASK_SHUTDOWN_GRACEFUL_TIMEOUT_MS,
    broker_properties,
    log4j_properties,
    pg_conf,
    pg_hba,
    render_properties,
    worker_properties,
)
from cdcsync.stack.settings import StackSettings


def _settings(tmp_path: Path, **kw: object) -> StackSettings:
    return StackSettings(home=tmp_path / "home", cache=tmp_path / "cache", **kw)


def _parse(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def _pick(props: dict[str, str], keys: Iterable[str]) -> dict[str, str | None]:
    """``props`` restricted to ``keys``, to compare with what is expected in one assert."""
    return {key: props.get(key) for key in keys}


def test_render_properties_escapes_keys_values_and_skips_none() -> None:
    text = render_properties(
        {"a.b": "x=y", "k:ey": 1, "flag": True, "off": False, "none": None, "sp": " lead"}
        | {"u": "é"},
        header="first\nsecond",
    )
    assert text.splitlines() == [
        "# first",
        "# second",
        "a.b=x=y",
        "k\\:ey=1",
        "flag=true",
        "off=false",
        "sp=\\ lead",
        "u=\\u00e9",
    ]


def test_render_properties_escapes_backslashes_and_newlines() -> None:
    assert render_properties({"p": "C:\\dir\nnext"}) == "p=C:\\\\dir\\nnext\n"


def test_broker_is_kraft_single_node_on_configured_ports(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_port=19092, controller_port=19093)
    props = _parse(render_properties(broker_properties(settings)))
    expected = {
        "process.roles": "broker,controller",
        "controller.quorum.voters": "1@127.0.0.1:19093",
        "listeners": "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:19092",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.dirs": str(settings.kafka_dir / "data"),
    }
    assert _pick(props, expected) == expected


def test_worker_uses_schemaless_json_env_provider_and_plugin_path(tmp_path: Path) -> None:
    settings = _settings(tmp_path, connect_port=18083)
    plugins = tmp_path / "plugins"
    props = _parse(
        render_properties(worker_properties(settings, plugin_path=plugins, discovery="only_scan"))
    )
    json_converter = "org.apache.kafka.connect.json.JsonConverter"
    expected = {
        "key.converter": json_converter,
        "value.converter": json_converter,
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        **{f"{kind}.storage.replication.factor": "1" for kind in ("config", "offset", "status")},
        "offset.flush.interval.ms": "1000",
        "plugin.path": str(plugins),
        "plugin.discovery": "only_scan",
        "config.providers": "env",
        "config.providers.env.class": ENV_CONFIG_PROVIDER,
        "listeners": "http://127.0.0.1:18083",
        "bootstrap.servers": settings.bootstrap_servers,
    }
    assert _pick(props, expected) == expected


def test_worker_waits_for_a_revoked_task_to_release_the_replication_slot(tmp_path: Path) -> None:
    # Connect's 5 s default cancels Debezium's stop() during a broker outage: the slot leaks.
    props = _parse(render_properties(worker_properties(_settings(tmp_path), plugin_path=tmp_path)))
    assert int(props["task.shutdown.graceful.timeout.ms"]) >= 60_000
    assert props["task.shutdown.graceful.timeout.ms"] == str(TASK_SHUTDOWN_GRACEFUL_TIMEOUT_MS)


def test_log4j_writes_to_the_given_file(tmp_path: Path) -> None:
    props = log4j_properties(tmp_path / "x.log", quiet=("org.reflections",))
    assert props["log4j.rootLogger"] == "INFO, file"
    assert props["log4j.appender.file.File"] == tmp_path / "x.log"
    assert props["log4j.logger.org.reflections"] == "WARN"


def test_pg_conf_enables_logical_decoding_on_loopback(tmp_path: Path) -> None:
    settings = _settings(tmp_path, pg_port=55555)
    conf = pg_conf(settings)
    assert "wal_level = logical" in conf
    assert "listen_addresses = '127.0.0.1'" in conf
    assert "port = 55555" in conf
    assert f"unix_socket_directories = '{settings.pg_dir / 'run'}'" in conf
    assert "max_replication_slots = 10" in conf


def test_pg_hba_requires_passwords_over_tcp() -> None:
    rows = [line.split() for line in pg_hba().splitlines() if not line.startswith("#")]
    assert ["host", "replication", "all", "all", "scram-sha-256"] in rows
    assert all(row[-1] != "trust" for row in rows if row[0] == "host")


def test_cluster_node_has_its_own_ports_and_replicates_three_times(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_port=29092, controller_port=29093, brokers=3)
    props = _parse(render_properties(broker_properties(settings, node=2)))
    expected = {
        "node.id": "2",
        "controller.quorum.voters": "1@127.0.0.1:29093,2@127.0.0.1:29193,3@127.0.0.1:29293",
        "listeners": "PLAINTEXT://127.0.0.1:29192,CONTROLLER://127.0.0.1:29193",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:29192",
        "log.dirs": str(settings.kafka_dir / "node-2" / "data"),
        "default.replication.factor": "3",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "min.insync.replicas": "2",
    }
    assert _pick(props, expected) == expected
    # node 1 keeps the single broker's place
    assert broker_properties(settings, node=1)["log.dirs"] == settings.kafka_dir / "data"
    worker = _parse(render_properties(worker_properties(settings, plugin_path=tmp_path)))
    kinds = ("config", "offset", "status")
    assert {worker[f"{kind}.storage.replication.factor"] for kind in kinds} == {"3"}
    assert worker["bootstrap.servers"] == "127.0.0.1:29092,127.0.0.1:29192,127.0.0.1:29292"


def test_single_broker_properties_do_not_change_with_the_cluster_option(tmp_path: Path) -> None:
    single = broker_properties(_settings(tmp_path))
    assert single == broker_properties(_settings(tmp_path, brokers=1), node=1)
    assert single["node.id"] == 1 and single["min.insync.replicas"] == 1
    assert single["default.replication.factor"] == 1
