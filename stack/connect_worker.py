"""Local Kafka Connect distributed worker running Debezium; env vars feed the connector configs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import httpx

from cdcsync.errors import StackError
from cdcsync.stack.config_files import log4j_properties, render_properties, worker_properties
from cdcsync.stack.kafka import java
from cdcsync.stack.processes import (
    PidFile,
    Progress,
    check_port_free,
    start_detached,
    stop_pid,
    tail,
    wait_until,
)
from cdcsync.stack.secure import worker_security_properties
from cdcsync.stack.settings import StackSettings

__all__ = [
    "DISCOVERY_MODES",
    "config_current",
    "healthy",
    "launch",
    "missing_plugins",
    "pidfile",
    "start",
    "stop",
    "wait_healthy",
]

log = logging.getLogger(__name__)

#: Fastest first; `only_scan` also finds plugins without ServiceLoader manifests.
DISCOVERY_MODES = ("service_load", "only_scan")


def _properties(settings: StackSettings) -> Path:
    return settings.connect_dir / "worker.properties"


def _log_path(settings: StackSettings) -> Path:
    return settings.logs_dir / "connect.log"


def _discovery_file(settings: StackSettings) -> Path:
    return settings.connect_dir / "plugin.discovery"


def pidfile(settings: StackSettings) -> PidFile:
    """Pid file of the worker `up` started; its worker.properties path proves the pid is ours."""
    return PidFile(settings.pids_dir / "connect.pid", marker=str(_properties(settings)))


def _discovery(settings: StackSettings) -> str:
    """The discovery mode that worked last time (remembered after a fallback)."""
    try:
        mode = _discovery_file(settings).read_text().strip()
    except OSError:
        return DISCOVERY_MODES[0]
    return mode if mode in DISCOVERY_MODES else DISCOVERY_MODES[0]


def _render(settings: StackSettings, plugin_path: Path, mode: str) -> str:
    """worker.properties text; its header fingerprints the environment the worker gets."""
    env = json.dumps(settings.connector_env(), sort_keys=True).encode()
    header = (
        "Written by cdcsync.stack on every start; connector configs live in connect/.\n"
        f"environment fingerprint {hashlib.sha256(env).hexdigest()[:16]}"
    )
    props = worker_properties(settings, plugin_path=plugin_path, discovery=mode)
    if settings.secure:
        props.update(worker_security_properties(settings))
    return render_properties(props, header=header)


def config_current(settings: StackSettings, plugin_path: Path) -> bool:
    """True if the worker was started with the config and CDCSYNC_PG_* the settings give now."""
    try:
        return _properties(settings).read_text() == _render(
            settings, plugin_path, _discovery(settings)
        )
    except OSError:
        return False


def launch(
    settings: StackSettings, libs: Path, plugin_path: Path, *, discovery: str | None = None
) -> int:
    """Write the worker config and start it detached, with CDCSYNC_PG_* in its environment."""
    check_port_free(
        settings.host, settings.connect_port, what="kafka connect", env_var="CDCSYNC_CONNECT_PORT"
    )
    settings.connect_dir.mkdir(parents=True, exist_ok=True)
    props = _properties(settings)
    props.write_text(_render(settings, plugin_path, discovery or _discovery(settings)))
    log4j = settings.connect_dir / "log4j.properties"
    quiet = (
        "org.reflections",
        "org.apache.kafka.clients",
        "org.apache.kafka.common.utils.AppInfoParser",
    )
    log4j.write_text(render_properties(log4j_properties(_log_path(settings), quiet=quiet)))
    argv = [
        java(settings),
        "-Xms256m",
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j}",
        f"-Dkafka.logs.dir={settings.logs_dir}",
        "-cp",
        f"{libs}/*",
        "org.apache.kafka.connect.cli.ConnectDistributed",
        str(props),
    ]
    env = {**os.environ, **settings.connector_env()}
    env.pop("CLASSPATH", None)
    return start_detached(
        argv, pidfile=pidfile(settings), log_path=settings.logs_dir / "connect.out", env=env
    )


def healthy(settings: StackSettings, *, timeout: float = 2.0) -> bool:
    """True if `GET /connectors` answers 200."""
    try:
        response = httpx.get(f"{settings.connect_url}/connectors", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def wait_healthy(settings: StackSettings, pid: int | None) -> float:
    """Block until the REST API answers; StackError with the log tail if the worker dies first."""
    return wait_until(
        lambda: healthy(settings),
        what="kafka connect",
        timeout=settings.start_timeout,
        interval=0.3,
        pid=pid,
        log_path=_log_path(settings),
    )


def missing_plugins(settings: StackSettings, classes: Iterable[str]) -> list[str]:
    """The connector classes the worker does not offer (GET /connector-plugins)."""
    wanted = set(classes)
    if not wanted:
        return []
    response = httpx.get(f"{settings.connect_url}/connector-plugins", timeout=10)
    response.raise_for_status()
    offered = {plugin["class"] for plugin in response.json()}
    return sorted(wanted - offered)


def start(
    settings: StackSettings,
    libs: Path,
    plugin_path: Path,
    *,
    required: Iterable[str] = (),
    progress: Progress = print,
) -> int:
    """Start the worker and wait until healthy and offering the required connector classes.

    With `plugin.discovery=service_load` a plugin without a ServiceLoader manifest is invisible;
    if a required class is missing (or the worker fails to start) it is restarted once with
    `only_scan`, and that choice is remembered in <home>/connect/plugin.discovery.
    """
    required = list(required)
    first = _discovery(settings)
    modes = list(DISCOVERY_MODES) if first == DISCOVERY_MODES[0] else [first]
    for attempt, mode in enumerate(modes):
        last = attempt == len(modes) - 1
        pid = launch(settings, libs, plugin_path, discovery=mode)
        try:
            wait_healthy(settings, pid)
            missing = missing_plugins(settings, required)
        except StackError:
            if last:
                raise
            missing = ["(worker failed to start)"]
        if not missing:
            _discovery_file(settings).write_text(mode + "\n")
            return pid
        if last:
            raise StackError(
                f"kafka connect does not offer {', '.join(missing)} (plugin.path={plugin_path}, "
                f"plugin.discovery={mode}); remove {plugin_path} to fetch the plugin again. "
                f"See {_log_path(settings)}"
            )
        progress(
            f"connect: plugin.discovery={mode} did not find {', '.join(missing)}; "
            "retrying with only_scan"
        )
        stop(settings)
    raise AssertionError("unreachable")


def stop(settings: StackSettings, *, timeout: float = 30.0) -> bool:
    """SIGTERM the worker `up` started (stops tasks, flushes offsets); SIGKILL after timeout."""
    pf = pidfile(settings)
    pid = pf.live_pid()
    if pid is None:
        pf.remove()
        return False
    if not stop_pid(pid, timeout=timeout):
        raise StackError(
            f"connect pid {pid} did not stop; see {_log_path(settings)}\n"
            + tail(_log_path(settings))
        )
    pf.remove()
    return True
