"""Real third-party REST servers for the tests and examples: json-server and Directus, on loopback.

Nobody here wrote them, so a sync proven against them is not proven only
against our own reference API. Both come from the npm registry at pinned
versions (installed once into ``<cache>/npm/``, see :mod:`cdcsync.stack.npm`),
run detached with a pid file under ``<home>/pids``, log to ``<home>/logs``, and
keep their data under ``<home>/apis``. Starting is idempotent (a healthy server
of ours on that port is reused) and health-checked (a real request, no sleeps);
:func:`stop` ends only the process the pid file names.

- :func:`json_server`: json-server 0.17.4, one JSON file as database, no auth,
  bare-array listings with ``_page``/``_limit``, ``X-Total-Count`` and ``Link``.
- :func:`directus`: Directus 12.4.0 on the local stack's PostgreSQL (its own
  database, ``cdcsync_directus``), a static admin bearer token; items under
  ``/items/<collection>`` answered as ``{"data": ...}``.

``python -m cdcsync.stack.apis install|up|down|status [json-server|directus]``
drives them; :func:`install_in_background` starts an install that outlives its
caller, so a test session can warm the cache while other tests run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from cdcsync.errors import CdcsyncError, StackError
from cdcsync.stack import npm, postgres
from cdcsync.stack.processes import (
    PidFile,
    Progress,
    check_port_free,
    start_detached,
    stop_pid,
    tail,
    wait_until,
)
from cdcsync.stack.settings import StackSettings

__all__ = [
    "DIRECTUS_DATABASE",
    "DIRECTUS_PORT",
    "DIRECTUS_VERSION",
    "JSON_SERVER_PORT",
    "JSON_SERVER_VERSION",
    "RunningApi",
    "directus",
    "directus_collection",
    "install_in_background",
    "json_server",
    "stop",
]

log = logging.getLogger(__name__)

#: Last 0.x release: the REST shape (bare arrays, _page/_limit, Link) the examples rely on.
JSON_SERVER_VERSION = "0.17.4"
JSON_SERVER_PORT = 8940
#: 12.4.1 does not resolve from the registry (its @directus/app@18.0.1 is not served).
DIRECTUS_VERSION = "12.4.0"
DIRECTUS_PORT = 8055
DIRECTUS_DATABASE = "cdcsync_directus"


@dataclass(frozen=True)
class RunningApi:
    """A server that answers: where, which process, its log; ``token`` when it needs one."""

    name: str
    url: str
    pid: int
    log_path: Path
    token: str | None = None


def _folder(name: str, port: int, settings: StackSettings) -> Path:
    folder = settings.home / "apis" / f"{name}-{port}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _pidfile(name: str, port: int, settings: StackSettings) -> PidFile:
    """The pid file of our ``name`` server on ``port``; its command line names the marker."""
    if name == "json-server":  # one JSON file per port
        marker = str(settings.home / "apis" / f"{name}-{port}" / "db.json")
    else:  # the installed program
        marker = str(npm.install_dir(name, DIRECTUS_VERSION, settings))
    return PidFile(settings.pids_dir / f"{name}-{port}.pid", marker=marker)


def _answers(url: str, *, headers: Mapping[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _bin(root: Path, name: str) -> str:
    path = root / "node_modules" / ".bin" / name
    if not path.exists():
        raise StackError(f"{path} is missing: remove {root} and start again to reinstall")
    return str(path)


# -- json-server ----------------------------------------------------------------------


def json_server(
    settings: StackSettings | None = None,
    *,
    port: int = JSON_SERVER_PORT,
    collections: Iterable[str] = ("contacts",),
    fresh: bool = False,
    progress: Progress = print,
) -> RunningApi:
    """Start (or reuse) json-server on 127.0.0.1:``port`` with these collections; it answers.

    ``fresh`` starts it again on empty collections (its JSON file rewritten).
    """
    settings = settings or StackSettings()
    name, wanted = "json-server", sorted(set(collections))
    url = f"http://127.0.0.1:{port}"
    folder = _folder(name, port, settings)
    db_path = folder / "db.json"
    log_path = settings.logs_dir / f"{name}-{port}.log"
    pidfile = _pidfile(name, port, settings)

    def healthy() -> bool:
        return all(_answers(f"{url}/{c}?_limit=1") for c in wanted)

    pid = pidfile.live_pid()
    if pid is not None and healthy() and not fresh:
        return RunningApi(name, url, pid, log_path)
    if pid is not None:  # fresh, or ours but missing a collection (or hung): restart
        stop_pid(pid, timeout=10)
        pidfile.remove()
    root = npm.install(name, JSON_SERVER_VERSION, settings, progress)
    data: dict[str, Any] = {}
    if db_path.exists() and not fresh:
        data = json.loads(db_path.read_text())
    for collection in wanted:
        data.setdefault(collection, [])
    db_path.write_text(json.dumps(data, indent=2) + "\n")
    check_port_free("127.0.0.1", port, what=name, env_var="the port argument")
    argv = [npm.node_bin(), _bin(root, name), "--host", "127.0.0.1", "--port", str(port)]
    pid = start_detached([*argv, str(db_path)], pidfile=pidfile, log_path=log_path, cwd=folder)
    waited = wait_until(
        healthy, what=name, timeout=settings.start_timeout, pid=pid, log_path=log_path
    )
    progress(f"{name} {JSON_SERVER_VERSION}: {url} answers after {waited:.1f}s (pid {pid})")
    return RunningApi(name, url, pid, log_path)


# -- Directus -------------------------------------------------------------------------


def _secret_file(path: Path) -> str:
    """A random value kept in ``path`` (0600), the same on every start."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _ensure_database(settings: StackSettings) -> None:
    """Directus's own database in the stack's PostgreSQL, owned by the application role."""
    try:
        conn = psycopg.connect(postgres.admin_dsn(settings), autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        raise StackError(
            f"Directus needs the stack's PostgreSQL ({exc}); run `cdcsync local up` first"
        ) from exc
    with conn:
        if conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DIRECTUS_DATABASE]
        ).fetchone():
            return
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DIRECTUS_DATABASE), sql.Identifier(settings.pg_user)
            )
        )


def _directus_env(settings: StackSettings, port: int, folder: Path, token: str) -> dict[str, str]:
    """Directus's configuration, all from the environment; its files stay under ``folder``."""
    for sub in ("uploads", "extensions"):
        (folder / sub).mkdir(exist_ok=True)
    package = folder / "package.json"  # Directus looks for package extensions here
    if not package.exists():
        package.write_text('{"name": "cdcsync-directus", "private": true}\n')
    return dict(os.environ) | {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DB_CLIENT": "pg",
        "DB_HOST": settings.pg_host,
        "DB_PORT": str(settings.pg_port),
        "DB_DATABASE": DIRECTUS_DATABASE,
        "DB_USER": settings.pg_user,
        "DB_PASSWORD": settings.pg_password.get_secret_value(),
        "SECRET": _secret_file(folder / "secret"),
        "ADMIN_EMAIL": "admin@example.com",
        "ADMIN_PASSWORD": _secret_file(folder / "admin-password"),
        "ADMIN_TOKEN": token,  # the admin's static token, set when bootstrap creates the admin
        "TELEMETRY": "false",
        "CACHE_ENABLED": "false",
        "RATE_LIMITER_ENABLED": "false",
        "WEBSOCKETS_ENABLED": "false",
        "STORAGE_LOCAL_ROOT": str(folder / "uploads"),
        "EXTENSIONS_PATH": str(folder / "extensions"),
        "LOG_STYLE": "raw",
    }


def directus(
    settings: StackSettings | None = None,
    *,
    port: int = DIRECTUS_PORT,
    progress: Progress = print,
) -> RunningApi:
    """Start (or reuse) Directus on 127.0.0.1:``port``; ``token`` is the admin's static token."""
    settings = settings or StackSettings()
    name, url = "directus", f"http://127.0.0.1:{port}"
    folder = _folder(name, port, settings)
    token = _secret_file(folder / "admin-token")
    log_path = settings.logs_dir / f"{name}-{port}.log"
    root = npm.install_dir(name, DIRECTUS_VERSION, settings)
    pidfile = _pidfile(name, port, settings)

    def healthy() -> bool:
        return _answers(f"{url}/users/me", headers={"Authorization": f"Bearer {token}"})

    pid = pidfile.live_pid()
    if pid is not None and healthy():
        return RunningApi(name, url, pid, log_path, token)
    if pid is not None:
        stop_pid(pid, timeout=10)
        pidfile.remove()
    npm.install(name, DIRECTUS_VERSION, settings, progress)
    _ensure_database(settings)
    env = _directus_env(settings, port, folder, token)
    check_port_free("127.0.0.1", port, what=name, env_var="the port argument")
    _bootstrap(_bin(root, name), env, folder, log_path, progress)
    argv = [npm.node_bin(), _bin(root, name), "start"]
    pid = start_detached(argv, pidfile=pidfile, log_path=log_path, env=env, cwd=folder)
    waited = wait_until(
        healthy, what=name, timeout=settings.start_timeout, pid=pid, log_path=log_path
    )
    progress(f"{name} {DIRECTUS_VERSION}: {url} answers after {waited:.1f}s (pid {pid})")
    return RunningApi(name, url, pid, log_path, token)


def _bootstrap(
    program: str, env: Mapping[str, str], folder: Path, log_path: Path, progress: Progress
) -> None:
    """``directus bootstrap``: migrations and the admin user; a no-op on an installed database."""
    progress(f"directus: bootstrap (migrations, admin user; log {log_path})")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        result = subprocess.run(
            [npm.node_bin(), program, "bootstrap"],
            cwd=folder,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=600,
        )
    if result.returncode != 0:
        raise StackError(
            f"directus bootstrap failed (exit {result.returncode}); see {log_path}\n"
            f"{tail(log_path)}".rstrip()
        )


def directus_collection(api: RunningApi, spec: Mapping[str, Any]) -> bool:
    """Create the collection ``spec`` describes (``POST /collections`` body) unless it exists.

    True if it was created. ``spec`` is Directus's own shape: ``collection``,
    ``meta``, ``schema`` and ``fields``.
    """
    headers = {"Authorization": f"Bearer {api.token}"}
    with httpx.Client(base_url=api.url, headers=headers, timeout=30.0) as client:
        found = client.get(f"/collections/{spec['collection']}")
        if found.status_code == 200:
            return False
        made = client.post("/collections", json=dict(spec))
        if made.status_code != 200:
            raise StackError(
                f"directus: POST /collections {spec['collection']} answered "
                f"{made.status_code}: {made.text[:500]}"
            )
    return True


# -- stopping and the command line ------------------------------------------------------


def stop(name: str, port: int, settings: StackSettings | None = None) -> bool:
    """Stop the ``name`` server we started on ``port``; False if none of ours ran."""
    settings = settings or StackSettings()
    pidfile = _pidfile(name, port, settings)
    pid = pidfile.live_pid()
    if pid is None:
        return False
    stopped = stop_pid(pid, timeout=15)
    pidfile.remove()
    return stopped


_DEFAULT_PORTS = {"json-server": JSON_SERVER_PORT, "directus": DIRECTUS_PORT}
_VERSIONS = {"json-server": JSON_SERVER_VERSION, "directus": DIRECTUS_VERSION}


def install_in_background(name: str, settings: StackSettings | None = None) -> int | None:
    """Start ``python -m cdcsync.stack.apis install NAME`` detached, unless it is installed.

    The pid of the installer, or None when the cache already holds the server. The
    install takes the cache's lock, so a later :func:`json_server` or :func:`directus`
    waits for it instead of installing again; it finishes even if the caller exits.
    """
    settings = settings or StackSettings()
    if npm.installed(name, _VERSIONS[name], settings):
        return None
    pidfile = PidFile(settings.pids_dir / f"npm-install-{name}.pid", marker="cdcsync.stack.apis")
    if (running := pidfile.live_pid()) is not None:
        return running
    argv = [sys.executable, "-m", "cdcsync.stack.apis", "install", name]
    return start_detached(argv, pidfile=pidfile, log_path=settings.logs_dir / f"npm-{name}.log")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cdcsync.stack.apis install|up|down|status [NAME ...]``."""
    parser = argparse.ArgumentParser(prog="python -m cdcsync.stack.apis", description=__doc__)
    parser.add_argument("command", choices=["install", "up", "down", "status"])
    parser.add_argument("names", nargs="*", metavar="NAME", help="json-server, directus (both)")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.names) - set(_DEFAULT_PORTS)):
        parser.error(f"unknown server {unknown}; choose from {sorted(_DEFAULT_PORTS)}")
    settings = StackSettings()
    try:
        for name in args.names or list(_DEFAULT_PORTS):
            port = _DEFAULT_PORTS[name]
            if args.command == "install":
                print(f"{name}: {npm.install(name, _VERSIONS[name], settings)}")
            elif args.command == "up":
                api = json_server(settings) if name == "json-server" else directus(settings)
                print(f"{name}: {api.url} (pid {api.pid}, log {api.log_path})")
            elif args.command == "down":
                print(f"{name}: {'stopped' if stop(name, port, settings) else 'not running'}")
            else:
                pid = _pidfile(name, port, settings).live_pid()
                print(f"{name}: {'pid ' + str(pid) if pid else 'not running'} (port {port})")
    except CdcsyncError as exc:
        print(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
