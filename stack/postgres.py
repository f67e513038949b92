"""Local PostgreSQL for Debezium: initdb, logical WAL, loopback only, the cdcsync role and db."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from cdcsync.errors import StackError
from cdcsync.stack.config_files import pg_conf, pg_hba
from cdcsync.stack.processes import (
    PidFile,
    Progress,
    check_port_free,
    is_alive,
    stop_pid,
    tail,
    wait_until,
)
from cdcsync.stack.settings import StackSettings

__all__ = [
    "admin_dsn",
    "apply_sql",
    "bootstrap",
    "config_current",
    "drop_replication_slots",
    "healthy",
    "pidfile",
    "running_pid",
    "start",
    "stop",
]

log = logging.getLogger(__name__)
SUPERUSER = "postgres"


def _data(settings: StackSettings) -> Path:
    return settings.pg_dir / "data"


def _socket_dir(settings: StackSettings) -> Path:
    return settings.pg_dir / "run"


def _log_path(settings: StackSettings) -> Path:
    return settings.logs_dir / "postgres.log"


def pidfile(settings: StackSettings) -> PidFile:
    """Pid file of the postmaster `up` started; its data dir in the command line proves it."""
    return PidFile(settings.pids_dir / "postgres.pid", marker=str(_data(settings)))


def admin_dsn(settings: StackSettings, *, dbname: str = "postgres") -> str:
    """Superuser connection over the private unix socket (trust auth; socket dir is 0700)."""
    return make_conninfo(
        host=str(_socket_dir(settings)), port=settings.pg_port, user=SUPERUSER, dbname=dbname
    )


def _bin(settings: StackSettings, name: str) -> str:
    candidates: list[Path] = []
    if settings.pg_bin is not None:
        candidates.append(settings.pg_bin)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    for folder in candidates:
        if (folder / name).is_file():
            return str(folder / name)
    found = shutil.which(name)
    if found:
        return found
    raise StackError(
        f"PostgreSQL server program {name!r} not found; install it (apt-get install postgresql-15) "
        "or set CDCSYNC_PG_BIN to the folder holding initdb and pg_ctl"
    )


def _as_owner(settings: StackSettings, argv: Sequence[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as the postgres OS user when we are root."""
    if os.geteuid() != 0:
        return list(argv)
    runuser = shutil.which("runuser")
    if runuser is None:
        raise StackError("running as root needs `runuser` (util-linux) to start PostgreSQL")
    return [runuser, "-u", settings.pg_os_user, "--", *argv]


def _chown(settings: StackSettings, *paths: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        owner = pwd.getpwnam(settings.pg_os_user)
    except KeyError as exc:
        raise StackError(
            f"OS user {settings.pg_os_user!r} does not exist; create it or set CDCSYNC_PG_OS_USER"
        ) from exc
    for path in paths:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _run(settings: StackSettings, argv: Sequence[str], *, what: str) -> None:
    result = subprocess.run(
        _as_owner(settings, argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        cwd=settings.pg_dir,
        start_new_session=True,  # the postmaster must not share our terminal's Ctrl-C
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise StackError(
            f"{what} failed (exit {result.returncode}): {detail}; see {_log_path(settings)}"
        )


def _prepare_dirs(settings: StackSettings) -> None:
    pg_dir, run = settings.pg_dir, _socket_dir(settings)
    for folder in (pg_dir, run, settings.logs_dir, settings.pids_dir):
        folder.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)
    log_path = _log_path(settings)
    log_path.touch(exist_ok=True)
    _chown(settings, pg_dir, run, log_path)
    if os.geteuid() == 0:
        probe = subprocess.run(
            _as_owner(settings, ["test", "-w", str(pg_dir), "-a", "-w", str(log_path)]),
            check=False,
        )
        if probe.returncode != 0:
            raise StackError(
                f"the {settings.pg_os_user!r} OS user cannot reach {pg_dir}; set CDCSYNC_HOME to a "
                "folder every user can traverse (not under /root), e.g. /var/tmp/cdcsync"
            )


def _initdb(settings: StackSettings, progress: Progress) -> None:
    data, done = _data(settings), settings.pg_dir / "initdb.done"
    if done.exists() and (data / "PG_VERSION").exists():
        return
    if data.exists():
        log.warning("removing %s: an earlier initdb did not finish", data)
        shutil.rmtree(data)
    progress(f"postgres: initdb {data}")
    _run(
        settings,
        [
            _bin(settings, "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-instructions",
        ],
        what="initdb",
    )
    with (data / "postgresql.conf").open("a") as fh:
        fh.write("\ninclude_if_exists = 'cdcsync.conf'\n")
    done.write_text("ok\n")


def config_current(settings: StackSettings) -> bool:
    """True if the running server was started with the config the settings give now."""
    try:
        return (_data(settings) / "cdcsync.conf").read_text() == pg_conf(settings)
    except OSError:
        return False


def _write_config(settings: StackSettings) -> None:
    data = _data(settings)
    (data / "cdcsync.conf").write_text(pg_conf(settings))
    (data / "pg_hba.conf").write_text(pg_hba())
    _chown(settings, data / "cdcsync.conf", data / "pg_hba.conf")


def healthy(settings: StackSettings) -> bool:
    """True if a real connection over the socket succeeds and answers a query."""
    try:
        with psycopg.connect(admin_dsn(settings), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def running_pid(settings: StackSettings) -> int | None:
    """Pid of our running postmaster, from our pid file or from postmaster.pid."""
    ours = pidfile(settings)
    pid = ours.live_pid()
    if pid is not None:
        return pid
    try:
        first = (_data(settings) / "postmaster.pid").read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    if first.isdigit() and is_alive(int(first)):
        ours.write(int(first))
        return ours.live_pid()
    return None


def start(settings: StackSettings, progress: Progress = print) -> int:
    """Init if needed, write config, start with pg_ctl and wait for a real connection; the pid."""
    check_port_free(settings.pg_host, settings.pg_port, what="postgres", env_var="CDCSYNC_PG_PORT")
    _prepare_dirs(settings)
    _initdb(settings, progress)
    _write_config(settings)
    timeout = settings.start_timeout
    _run(
        settings,
        [
            _bin(settings, "pg_ctl"),
            "-D",
            str(_data(settings)),
            "-l",
            str(_log_path(settings)),
            "-w",
            "-t",
            str(int(timeout)),
            "-s",
            "start",
        ],
        what="pg_ctl start",
    )
    pid = running_pid(settings)
    if pid is None:
        raise StackError(
            f"postgres did not start; see {_log_path(settings)}\n{tail(_log_path(settings))}"
        )
    wait_until(
        lambda: healthy(settings),
        what="postgres",
        timeout=timeout,
        pid=pid,
        log_path=_log_path(settings),
    )
    return pid


def bootstrap(settings: StackSettings) -> None:
    """Create or update the LOGIN REPLICATION role and its database (idempotent)."""
    user, db = settings.pg_user, settings.pg_db
    password = settings.pg_password.get_secret_value()
    with psycopg.connect(admin_dsn(settings), autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [user]).fetchone()
        conn.execute(
            sql.SQL("{} ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
                sql.SQL("ALTER" if exists else "CREATE"),
                sql.Identifier(user),
                sql.Literal(password),
            )
        )
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone() is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(db), sql.Identifier(user)
                )
            )


def apply_sql(
    files: Iterable[str | os.PathLike[str]], *, settings: StackSettings | None = None
) -> None:
    """Run each SQL file in one transaction as the application role, so it owns what it creates."""
    settings = settings or StackSettings()
    paths = [Path(f) for f in files]
    if not paths:
        return
    try:
        conn = psycopg.connect(settings.pg_dsn(), connect_timeout=5)
    except psycopg.Error as exc:
        raise StackError(f"cannot connect as {settings.pg_user} to apply SQL: {exc}") from exc
    with conn:
        for path in paths:
            try:
                text = path.read_text()
            except OSError as exc:
                raise StackError(f"cannot read SQL file {path}: {exc}") from exc
            try:
                with conn.transaction():
                    conn.execute(text.encode())
            except psycopg.Error as exc:
                raise StackError(f"{path}: {exc}".strip()) from exc
            log.info("applied %s", path)


def drop_replication_slots(settings: StackSettings, *, timeout: float = 10.0) -> list[str]:
    """Drop the replication slots of our database (ending walsenders still holding them)."""
    dropped: list[str] = []
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin_dsn(settings), autocommit=True, connect_timeout=5) as conn:
        while True:
            rows = conn.execute(
                "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s",
                [settings.pg_db],
            ).fetchall()
            if not rows:
                return dropped
            for name, active_pid in rows:
                try:
                    if active_pid is not None:
                        conn.execute("SELECT pg_terminate_backend(%s)", [active_pid])
                    conn.execute("SELECT pg_drop_replication_slot(%s)", [name])
                    dropped.append(name)
                except psycopg.Error as exc:
                    if time.monotonic() > deadline:
                        raise StackError(f"cannot drop replication slot {name}: {exc}") from exc
            time.sleep(0.2)


def stop(settings: StackSettings, *, timeout: float = 30.0) -> bool:
    """Fast shutdown (SIGINT) of the postmaster `up` started, then SIGQUIT, then SIGKILL."""
    pid = running_pid(settings)
    if pid is None:
        pidfile(settings).remove()
        return False
    stop_pid(pid, sig=signal.SIGINT, timeout=timeout, escalate=(signal.SIGQUIT, signal.SIGKILL))
    pidfile(settings).remove()
    return True
