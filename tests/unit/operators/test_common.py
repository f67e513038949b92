"""Keys, partitions and tables shared by the operator tools."""

from __future__ import annotations

import pytest

from cdcsync.errors import ConfigurationError
from cdcsync.operators.common import (
    OffsetRange,
    bootstrap_servers,
    entity_config,
    key_partition,
    render_table,
)
from cdcsync.schemas.config import Config
from cdcsync.schemas.envelope import encode_key

CONFIG = Config.model_validate(
    {
        "app": {"broker": "kafka://k1:9092;kafka://k2:9093"},
        "entities": {
            "contact": {
                "topic": "cdcsync.contact",
                "mapping": {"email": "email"},
                "target": {"provider": "rest"},
            }
        },
    }
)


def test_key_partition_is_kafkas_default_partitioner():
    # Observed on the real stack: Debezium put {"id":1} and {"id":2} on partition 0 of 4.
    assert key_partition(b'{"id":1}', 4) == 0
    assert key_partition(b'{"id":2}', 4) == 0
    assert {key_partition(encode_key("id", str(i)), 4) for i in range(50)} == {0, 1, 2, 3}


def test_bootstrap_servers_from_faust_broker_urls():
    assert bootstrap_servers(CONFIG) == "k1:9092,k2:9093"


def test_unknown_entity_names_the_known_ones():
    assert entity_config(CONFIG, "contact").topic == "cdcsync.contact"
    with pytest.raises(ConfigurationError, match="known: contact"):
        entity_config(CONFIG, "order")


def test_offset_range_size_never_negative():
    assert OffsetRange(0, 5, 9).size == 4
    assert OffsetRange(0, 9, 5).size == 0


def test_render_table_aligns_columns():
    text = render_table(("a", "long header"), [(1, None), ("wider cell", "x")])
    lines = text.splitlines()
    assert lines[0] == "a           long header"
    assert lines[1] == "----------  -----------"
    assert lines[2] == "1"
    assert lines[3] == "wider cell  x"
