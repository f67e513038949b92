"""Jar fetching: skipped when the cache is complete, never marked complete when Maven fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cdcsync.errors import StackError
from cdcsync.stack import maven
from cdcsync.stack.settings import KAFKA_VERSION, StackSettings

FAKE_MVN = """#!/bin/sh
echo "$@" >> "{calls}"
for arg in "$@"; do
  case "$arg" in
    -DoutputDirectory=*|-Dplugins.dir=*) out="${{arg#*=}}" ;;
  esac
done
if [ -n "{fail}" ]; then mkdir -p "$out" && touch "$out/half.jar"; exit 1; fi
mkdir -p "$out" && touch "$out/some-lib.jar"
"""


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def install(*, fail: bool = False) -> Path:
        calls = tmp_path / "mvn-calls.txt"
        bindir = tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        script = bindir / "mvn"
        script.write_text(FAKE_MVN.format(calls=calls, fail="yes" if fail else ""))
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
        return calls

    return install


def _settings(tmp_path: Path) -> StackSettings:
    return StackSettings(home=tmp_path / "home", cache=tmp_path / "cache")


def test_fetch_stages_then_marks_complete(tmp_path: Path, fake_mvn) -> None:
    calls = fake_mvn()
    settings = _settings(tmp_path)
    lines: list[str] = []
    libs = maven.ensure_kafka_libs(settings, lines.append)
    assert libs == settings.cache / f"kafka-{KAFKA_VERSION}" / "libs"
    assert (libs / "some-lib.jar").is_file()
    assert maven.is_complete(libs.parent)
    assert lines[0] == f"fetching Kafka {KAFKA_VERSION} jars with Maven (first run only)…"
    assert "dependency:copy-dependencies" in calls.read_text()
    assert f"-Dkafka.version={KAFKA_VERSION}" in calls.read_text()
    assert not list(settings.cache.glob(".staging-*"))

    lines.clear()
    maven.ensure_kafka_libs(settings, lines.append)
    assert lines == [], "a complete cache is not fetched again"
    assert len(calls.read_text().splitlines()) == 1


def test_failed_fetch_leaves_no_complete_marker(tmp_path: Path, fake_mvn) -> None:
    fake_mvn(fail=True)
    settings = _settings(tmp_path)
    with pytest.raises(StackError, match="Maven could not fetch Kafka Connect"):
        maven.ensure_connect_libs(settings, lambda _: None)
    assert not settings.connect_libs.parent.exists()
    assert not list(settings.cache.glob(".staging-*"))


def test_killed_fetch_leftovers_are_cleaned(tmp_path: Path, fake_mvn) -> None:
    fake_mvn()
    settings = _settings(tmp_path)
    final = settings.kafka_libs.parent
    leftover = final.parent / f".staging-{final.name}-999999"
    (leftover / "libs").mkdir(parents=True)
    maven.ensure_kafka_libs(settings, lambda _: None)
    assert not leftover.exists()
    assert maven.is_complete(final)


def test_incomplete_leftover_is_replaced(tmp_path: Path, fake_mvn) -> None:
    fake_mvn()
    settings = _settings(tmp_path)
    settings.plugin_path.mkdir(parents=True)
    (settings.plugin_path / "partial.jar").touch()
    path = maven.ensure_debezium_plugin(settings, lambda _: None)
    assert maven.is_complete(path)
    assert not (path / "partial.jar").exists()
    assert (path / "some-lib.jar").is_file()


def test_missing_maven_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="apt-get install maven"):
        maven.ensure_kafka_libs(_settings(tmp_path), lambda _: None)


def test_poms_are_packaged() -> None:
    for kind in ("kafka", "connect", "debezium"):
        assert maven.pom_path(kind).is_file()
