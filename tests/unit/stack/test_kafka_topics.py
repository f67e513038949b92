"""Topic specs and the create-or-check plan run against an existing broker's topics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cdcsync.errors import StackError
from cdcsync.stack.kafka import (
    TopicSpec,
    check_formatted_for,
    cluster_id,
    known_nodes,
    pidfile,
    plan_topics,
    topic_configs,
)
from cdcsync.stack.settings import StackSettings


def test_topic_spec_validates_name_and_partitions() -> None:
    assert TopicSpec("cdcsync.contact", 4).configs == {}
    assert TopicSpec("state-changelog", 4, compacted=True).configs == {"cleanup.policy": "compact"}
    with pytest.raises(ValueError, match="invalid Kafka topic name"):
        TopicSpec("bad name", 1)
    with pytest.raises(ValueError, match="invalid Kafka topic name"):
        TopicSpec("x" * 250, 1)
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        TopicSpec("ok", 0)


def test_plan_creates_only_missing_topics() -> None:
    specs = [TopicSpec("a", 4), TopicSpec("b", 4), TopicSpec("a", 4)]
    assert plan_topics(specs, {"b": 4, "other": 1}) == [TopicSpec("a", 4)]
    assert plan_topics(specs, {"a": 4, "b": 4}) == []


def test_plan_refuses_partition_mismatch_and_says_what_to_do() -> None:
    with pytest.raises(StackError) as info:
        plan_topics([TopicSpec("cdcsync.contact", 4)], {"cdcsync.contact": 2})
    message = str(info.value)
    assert "cdcsync.contact exists with 2 partitions but 4 are configured" in message
    assert "CDCSYNC_PARTITIONS=2" in message
    assert "down --wipe" in message


def test_plan_refuses_conflicting_declarations() -> None:
    with pytest.raises(StackError, match="declared twice"):
        plan_topics([TopicSpec("a", 4), TopicSpec("a", 8)], {})


def test_cluster_id_is_generated_once_in_kafka_uuid_form(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path)
    first = cluster_id(settings)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", first)
    assert cluster_id(settings) == first
    assert (settings.kafka_dir / "cluster.id").read_text().strip() == first


def test_replicated_topics_require_in_sync_replicas() -> None:
    log = TopicSpec("t-changelog", 4, compacted=True)
    assert topic_configs(log, 1) == log.configs  # the local stack: one broker, one copy
    assert topic_configs(log, 3) == {**log.configs, "min.insync.replicas": "2"}
    assert topic_configs(TopicSpec("t", 4), 2)["min.insync.replicas"] == "1"
    assert topic_configs(TopicSpec("t", 4), 5)["min.insync.replicas"] == "2"


def test_a_home_formatted_for_one_size_refuses_another(tmp_path: Path) -> None:
    single = StackSettings(home=tmp_path)
    cluster = StackSettings(home=tmp_path, brokers=3)
    check_formatted_for(cluster)  # nothing formatted yet: any size
    (single.kafka_dir / "data").mkdir(parents=True)
    (single.kafka_dir / "data" / "meta.properties").write_text("version=1\n")
    check_formatted_for(single)  # formatted before clusters existed: one broker
    with pytest.raises(StackError, match=r"formatted for 1 broker.*--brokers 1.*down --wipe"):
        check_formatted_for(cluster)
    (single.kafka_dir / "brokers").write_text("3\n")
    check_formatted_for(cluster)
    assert list(known_nodes(single)) == [1, 2, 3]  # down and status find every node


def test_node_one_keeps_the_single_brokers_files(tmp_path: Path) -> None:
    s = StackSettings(home=tmp_path, brokers=3)
    assert pidfile(s, 1).path == s.pids_dir / "kafka.pid"
    assert pidfile(s, 1).marker == str(s.kafka_dir / "server.properties")
    assert pidfile(s, 2).path == s.pids_dir / "kafka-2.pid"
    assert pidfile(s, 2).marker == str(s.kafka_dir / "node-2" / "server.properties")
