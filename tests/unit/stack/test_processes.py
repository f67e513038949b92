"""Pid files, detached start, stop by pid, health polling and port checks."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from cdcsync.errors import StackError
from cdcsync.stack.processes import (
    PidFile,
    check_port_free,
    is_alive,
    port_owner,
    port_taken,
    start_detached,
    stop_pid,
    tail,
    wait_until,
)


def test_pidfile_roundtrip_and_garbage(tmp_path: Path) -> None:
    pf = PidFile(tmp_path / "pids" / "x.pid", marker="whatever")
    assert pf.read() is None
    pf.write(1234)
    assert pf.read() == 1234
    pf.path.write_text("not a pid\n")
    assert pf.read() is None
    pf.remove()
    pf.remove()  # idempotent
    assert not pf.path.exists()


def test_live_pid_needs_alive_process_with_marker(tmp_path: Path) -> None:
    mine = PidFile(tmp_path / "me.pid", marker="python")
    mine.write(os.getpid())
    assert mine.live_pid() == os.getpid()

    other = PidFile(tmp_path / "other.pid", marker="/no/such/marker/in/cmdline")
    other.write(os.getpid())
    assert other.live_pid() is None
    assert not other.path.exists(), "a pid reused by another program is a stale file"


def test_live_pid_removes_file_of_dead_process(tmp_path: Path) -> None:
    pf = PidFile(tmp_path / "dead.pid", marker="sleep")
    pid = start_detached(["sleep", "0"], pidfile=pf, log_path=tmp_path / "out.log")
    wait_until(lambda: not is_alive(pid), what="sleep 0", timeout=10)
    assert pf.live_pid() is None
    assert not pf.path.exists()


def test_start_detached_then_stop(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker-arg")
    pf = PidFile(tmp_path / "sleeper.pid", marker=marker)
    log = tmp_path / "logs" / "sleeper.log"
    pid = start_detached(
        ["sh", "-c", "echo started; while :; do sleep 0.2; done", marker], pidfile=pf, log_path=log
    )
    assert pf.read() == pid
    wait_until(lambda: "started" in tail(log), what="sleeper", timeout=10, pid=pid)
    assert pf.live_pid() == pid
    assert os.getsid(pid) != os.getsid(0), "detached into its own session"
    assert stop_pid(pid, timeout=5)
    assert not is_alive(pid)


def test_stop_escalates_when_signal_is_ignored(tmp_path: Path) -> None:
    pf = PidFile(tmp_path / "stubborn.pid", marker="stubborn")
    log = tmp_path / "stubborn.log"
    pid = start_detached(
        ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done", "stubborn"],
        pidfile=pf,
        log_path=log,
    )
    wait_until(lambda: "ready" in tail(log), what="stubborn", timeout=10, pid=pid)
    started = time.monotonic()
    assert stop_pid(pid, timeout=0.5)
    assert time.monotonic() - started < 5


def test_stop_of_missing_pid_is_true() -> None:
    assert stop_pid(2**22 + 12345, timeout=0.1)


def test_wait_until_returns_elapsed_and_times_out_with_hint() -> None:
    assert wait_until(lambda: True, what="x", timeout=1) < 1
    with pytest.raises(StackError, match=r"not healthy after 0s.*CDCSYNC_START_TIMEOUT"):
        wait_until(lambda: False, what="x", timeout=0.2, interval=0.05)


def test_wait_until_fails_fast_when_process_dies(tmp_path: Path) -> None:
    pf = PidFile(tmp_path / "crash.pid", marker="crash")
    log = tmp_path / "crash.log"
    pid = start_detached(["sh", "-c", "echo boom-reason; exit 3"], pidfile=pf, log_path=log)
    with pytest.raises(StackError, match=r"exited during startup(.|\n)*boom-reason"):
        wait_until(lambda: False, what="crashy", timeout=30, pid=pid, log_path=log)


def test_port_checks_name_the_owner() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_taken("127.0.0.1", port)
        assert port_owner(port) == os.getpid()
        with pytest.raises(StackError, match=rf"port {port} .*pid {os.getpid()}.*CDCSYNC_X_PORT"):
            check_port_free("127.0.0.1", port, what="thing", env_var="CDCSYNC_X_PORT")
    assert not port_taken("127.0.0.1", port)
    check_port_free("127.0.0.1", port, what="thing", env_var="CDCSYNC_X_PORT")


def test_tail_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert tail(tmp_path / "nope.log") == ""
    assert tail(None) == ""
