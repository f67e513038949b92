"""Process plumbing for the stack: pid files, detached start, stop by pid, health polling, ports."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cdcsync.errors import StackError

__all__ = [
    "PidFile",
    "Progress",
    "check_port_free",
    "is_alive",
    "port_owner",
    "port_taken",
    "proc_cmdline",
    "start_detached",
    "stop_pid",
    "tail",
    "wait_until",
]

log = logging.getLogger(__name__)

#: Where the stack reports its steps (print by default, a logger or a CLI echo otherwise).
Progress = Callable[[str], None]

# Runs argv in the background and records its pid; sh exits at once, so the child is
# re-parented away from us and never becomes our zombie (nor a Popen ResourceWarning).
_DETACH = 'pidfile="$1"; shift; "$@" </dev/null & echo $! > "$pidfile"'


def is_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def proc_cmdline(pid: int) -> str:
    """The process's command line joined by spaces ('' if unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


@dataclass(frozen=True)
class PidFile:
    """A pid file plus the marker (a path in the command line) proving the pid is still ours."""

    path: Path
    marker: str

    def read(self) -> int | None:
        """The recorded pid, or None if the file is missing or garbled."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def write(self, pid: int) -> None:
        """Record pid atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{pid}\n")
        tmp.replace(self.path)

    def remove(self) -> None:
        """Forget the pid."""
        self.path.unlink(missing_ok=True)

    def live_pid(self) -> int | None:
        """The pid if that process is alive and still runs our command; stale files are removed."""
        pid = self.read()
        if pid is None:
            return None
        if is_alive(pid) and self.marker in proc_cmdline(pid):
            return pid
        log.info("removing stale pid file %s (pid %s is gone or reused)", self.path, pid)
        self.remove()
        return None


def start_detached(
    argv: Sequence[str],
    *,
    pidfile: PidFile,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start argv in its own session with output appended to log_path; record and return its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pidfile.path.parent.mkdir(parents=True, exist_ok=True)
    raw = pidfile.path.with_suffix(".starting")
    raw.unlink(missing_ok=True)
    log.info("starting %s (log %s)", " ".join(argv), log_path)
    with log_path.open("ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {argv[0]}\n".encode())
        out.flush()
        shell = subprocess.run(
            ["/bin/sh", "-c", _DETACH, "sh", str(raw), *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            check=False,
            timeout=30,
        )
    text = raw.read_text().strip() if raw.exists() else ""
    raw.unlink(missing_ok=True)
    if shell.returncode != 0 or not text.isdigit():
        raise StackError(f"could not start {argv[0]}; see {log_path}")
    pid = int(text)
    pidfile.write(pid)
    return pid


def stop_pid(
    pid: int,
    *,
    sig: int = signal.SIGTERM,
    timeout: float = 30.0,
    escalate: Sequence[int] = (signal.SIGKILL,),
) -> bool:
    """Send sig, wait up to timeout, then each escalation signal in turn; True once it is gone."""
    for current in (sig, *escalate):
        try:
            os.kill(pid, current)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_alive(pid):
                return True
            time.sleep(0.1)
        log.warning("pid %s still alive %.0fs after signal %s", pid, timeout, current)
    return not is_alive(pid)


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    interval: float = 0.2,
    pid: int | None = None,
    log_path: Path | None = None,
) -> float:
    """Poll check() until it is true and return the seconds waited; fail fast if pid dies."""
    start = time.monotonic()
    deadline = start + timeout
    see = f"; see {log_path}" if log_path else ""
    while True:
        if check():
            return time.monotonic() - start
        if pid is not None and not is_alive(pid):
            last = tail(log_path) if log_path else ""
            raise StackError(f"{what}: process {pid} exited during startup{see}\n{last}".rstrip())
        if time.monotonic() >= deadline:
            raise StackError(
                f"{what}: not healthy after {timeout:.0f}s{see}; "
                "raise CDCSYNC_START_TIMEOUT if the machine is just slow"
            )
        time.sleep(interval)


def tail(path: Path | None, lines: int = 15) -> str:
    """Last lines of a log file, for error messages."""
    if path is None:
        return ""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def port_taken(host: str, port: int) -> bool:
    """True if something already listens on host:port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_owner(port: int) -> int | None:
    """Pid of the process listening on TCP port (Linux /proc), or None if unknown."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in targets:
                    return int(proc.name)
        except OSError:
            continue
    return None


def _describe(cmdline: str, width: int = 90) -> str:
    """A command line short enough for a message, keeping its end (main class, config file)."""
    if len(cmdline) <= width:
        return cmdline
    program = Path(cmdline.split(" ", 1)[0]).name
    return f"{program} … {cmdline[-(width - len(program) - 3) :]}"


def check_port_free(host: str, port: int, *, what: str, env_var: str) -> None:
    """Raise StackError naming the owner if host:port is already taken."""
    if not port_taken(host, port):
        return
    owner = port_owner(port)
    who = f"pid {owner} ({_describe(proc_cmdline(owner))})" if owner else "another process"
    raise StackError(
        f"{what}: port {port} on {host} is taken by {who}; stop it or set {env_var} to a free port"
    )
