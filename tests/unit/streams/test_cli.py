"""The CLI is cdcsync's: its help and version, Faust's extras hidden, help without a config."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cdcsync import __version__
from cdcsync.streams.cli import HIDDEN_COMMANDS, asks_only_for_help, present

ROOT = Path(__file__).resolve().parents[3]
OURS = ("worker", "demo", "local", "replay", "status", "check", "providers", "reconcile")


def cdcsync(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdcsync.streams", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CDCSYNC_CONFIG": str(config)},
        timeout=120,
    )


def _listed(help_text: str) -> set[str]:
    commands = help_text.split("Commands:", 1)[1]
    return {line.split()[0] for line in commands.splitlines() if line.startswith("  ")}


def test_help_says_what_cdcsync_is_and_lists_its_commands_only() -> None:
    done = cdcsync("--help", config=ROOT / "demo" / "cdcsync.yaml")
    assert done.returncode == 0, done.stderr
    assert "cdcsync keeps PostgreSQL and external APIs in sync" in done.stdout
    assert "Welcome" not in done.stdout and "faust-streaming" not in done.stdout
    assert "--app" not in done.stdout
    listed = _listed(done.stdout)
    assert set(OURS) <= listed and not listed & set(HIDDEN_COMMANDS)


def test_version_is_cdcsyncs() -> None:
    done = cdcsync("--version", config=ROOT / "demo" / "cdcsync.yaml")
    assert (done.returncode, done.stdout) == (0, f"cdcsync {__version__}\n")


@pytest.mark.parametrize(("content", "command"), [(None, "demo"), ("app: [\n  not yaml", "replay")])
def test_help_works_without_a_usable_configuration(
    config_text: Callable[[str | None], Path], content: str | None, command: str
) -> None:
    path = config_text(content)
    top = cdcsync("--help", config=path)
    assert top.returncode == 0, top.stderr
    assert set(OURS) <= _listed(top.stdout)
    assert "configuration error" in top.stderr and str(path) in top.stderr
    sub = cdcsync(command, "--help", config=path)
    assert sub.returncode == 0 and f"Usage: python -m cdcsync.streams {command}" in sub.stdout
    assert cdcsync("--version", config=path).stdout == f"cdcsync {__version__}\n"


def test_a_command_without_a_usable_configuration_fails_in_one_line(tmp_path: Path) -> None:
    done = cdcsync("status", "contact", "1", config=tmp_path / "missing.yaml")
    assert done.returncode == 1
    assert (
        done.stderr.startswith("cdcsync: configuration error: ") and "Traceback" not in done.stderr
    )


def test_present_replaces_the_version_and_help_and_hides_faust_commands() -> None:
    @click.group(help="Welcome to Faust")
    @click.version_option(version="Faust 9.9")
    @click.option("--app", "-A", default=None)
    def group(app: str | None) -> None: ...

    for name in ("worker", "livecheck", "send"):
        group.command(name)(lambda: None)
    present(group)
    runner = CliRunner()
    assert runner.invoke(group, ["--version"]).output == f"cdcsync {__version__}\n"
    shown = runner.invoke(group, ["--help"]).output
    assert "cdcsync keeps" in shown and "Welcome" not in shown and "--app" not in shown
    assert "worker" in shown and "livecheck" not in shown and "send" not in shown


@pytest.mark.parametrize(
    ("args", "expected"),
    [([], True), (["--help"], True), (["dlq", "--help"], True), (["--version"], True),
     (["worker"], False), (["status", "contact", "1"], False)],
)  # fmt: skip
def test_only_help_and_version_go_without_a_configuration(args: list[str], expected: bool) -> None:
    assert asks_only_for_help(args) is expected
