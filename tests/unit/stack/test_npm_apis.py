"""npm installs into the cache (with a fake npm on PATH) and the API servers' bookkeeping."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cdcsync.errors import StackError
from cdcsync.stack import apis, npm
from cdcsync.stack.settings import StackSettings

# Stands in for npm: records its arguments, then makes node_modules/<package> (or fails).
FAKE_NPM = """#!/bin/sh
echo "$@" >> "{calls}"
[ -n "$FAKE_NPM_FAIL" ] && {{ echo "npm ERR! 404 Not Found"; exit 1; }}
pkg="${{6%@*}}"
mkdir -p "node_modules/$pkg/bin"
"""


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(home=tmp_path / "home", cache=tmp_path / "cache")


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder, calls = tmp_path / "bin", tmp_path / "npm-calls.txt"
    folder.mkdir()
    script = folder / "npm"
    script.write_text(FAKE_NPM.format(calls=calls))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_install_once_into_the_cache_then_reuse(settings: StackSettings, fake_npm: Path) -> None:
    lines: list[str] = []
    root = npm.install("json-server", "0.17.4", settings, lines.append)
    assert root == settings.cache / "npm" / "json-server-0.17.4"
    assert (root / "node_modules" / "json-server").is_dir()
    assert npm.installed("json-server", "0.17.4", settings)
    assert not root.with_name(root.name + ".partial").exists()
    assert "--save-exact json-server@0.17.4" in fake_npm.read_text()
    assert any("installed in" in line for line in lines)

    assert npm.install("json-server", "0.17.4", settings, lines.append) == root
    assert len(fake_npm.read_text().splitlines()) == 1  # the second call ran no npm
    assert not npm.installed("json-server", "0.17.5", settings)


def test_a_failed_install_says_where_to_look_and_leaves_nothing(
    settings: StackSettings, fake_npm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NPM_FAIL", "1")
    with pytest.raises(
        StackError, match=r"npm install directus@12\.4\.1 failed.*npm-directus\.log"
    ):
        npm.install("directus", "12.4.1", settings, lambda _line: None)
    assert "npm ERR! 404" in (settings.logs_dir / "npm-directus.log").read_text()
    assert not npm.install_dir("directus", "12.4.1", settings).exists()


def test_missing_node_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError, match=r"Node\.js 20"):
        npm.node_bin()


def test_each_server_has_its_own_pid_file_and_marker(settings: StackSettings) -> None:
    js = apis._pidfile("json-server", 8946, settings)
    assert js.path == settings.pids_dir / "json-server-8946.pid"
    assert js.marker == str(settings.home / "apis" / "json-server-8946" / "db.json")
    dx = apis._pidfile("directus", 8055, settings)
    assert dx.marker == str(npm.install_dir("directus", apis.DIRECTUS_VERSION, settings))


def test_stopping_a_server_that_never_ran(settings: StackSettings) -> None:
    assert apis.stop("json-server", 8946, settings) is False


def test_directus_runs_on_the_stack_database_with_stable_secrets(
    settings: StackSettings, tmp_path: Path
) -> None:
    folder = tmp_path / "dx"
    folder.mkdir()
    env = apis._directus_env(settings, 8055, folder, "tok")
    again = apis._directus_env(settings, 8055, folder, "tok")
    assert (env["DB_CLIENT"], env["DB_DATABASE"], env["DB_PORT"]) == (
        "pg", apis.DIRECTUS_DATABASE, str(settings.pg_port),
    )  # fmt: skip
    assert (env["HOST"], env["PORT"], env["ADMIN_TOKEN"]) == ("127.0.0.1", "8055", "tok")
    assert env["SECRET"] == again["SECRET"] and env["ADMIN_PASSWORD"] == again["ADMIN_PASSWORD"]
    assert stat.S_IMODE((folder / "secret").stat().st_mode) == 0o600


def test_the_command_line_refuses_an_unknown_server() -> None:
    with pytest.raises(SystemExit) as exc:
        apis.main(["up", "strapi"])
    assert exc.value.code == 2


def test_no_background_install_when_the_cache_holds_it(
    settings: StackSettings, fake_npm: Path
) -> None:
    npm.install("directus", apis.DIRECTUS_VERSION, settings, lambda _line: None)
    assert apis.install_in_background("directus", settings) is None
