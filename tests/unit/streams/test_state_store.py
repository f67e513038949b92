"""The state store setting and `cdcsync topics`: the missing extra is named, the broker used."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdcsync.schemas.config import AppConfig, Config
from cdcsync.streams.commands.stack import broker_settings
from cdcsync.streams.preflight import check_store

ROOT = Path(__file__).resolve().parents[3]


def _config(**app: str) -> Config:
    return Config(app=AppConfig(**app), entities={})


def test_memory_is_the_default_store_and_passes():
    assert _config().app.store == "memory://"
    assert check_store(_config()) == []


def test_an_unknown_store_is_a_problem():
    (problem,) = check_store(_config(store="redis://"))
    assert "app.store" in problem and "rocksdb://" in problem


def test_rocksdb_without_rocksdict_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "rocksdict" else real(name)
    )
    (problem,) = check_store(_config(store="rocksdb://"))
    assert "pip install 'cdcsync[rocksdb]'" in problem


def test_rocksdb_with_rocksdict_installed_passes():
    if importlib.util.find_spec("rocksdict") is None:
        pytest.fail("rocksdict is not installed: pip install -e '.[dev,rocksdb]'")
    assert check_store(_config(store="rocksdb://")) == []


@pytest.mark.parametrize(
    ("broker", "address"),
    [
        ("kafka://kafka:29092", "kafka:29092"),
        ("kafka://a.example:9093;kafka://b.example:9093", "a.example:9093"),
        ("aiokafka://10.0.0.1:9092", "10.0.0.1:9092"),
        ("kafka://broker", "broker:9092"),
    ],
)
def test_topics_go_to_the_first_broker_of_the_config(broker: str, address: str):
    assert broker_settings(_config(broker=broker)).bootstrap_servers == address


def test_topics_command_is_listed():
    env = {**os.environ, "CDCSYNC_CONFIG": str(ROOT / "demo" / "cdcsync.yaml")}
    listing = subprocess.run(
        [sys.executable, "-m", "cdcsync.streams", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    ).stdout
    assert "  topics " in listing
