"""Register connector JSON files with Kafka Connect (idempotent PUT) and wait until they run."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from cdcsync.errors import ConnectError

__all__ = [
    "ConnectorConfig",
    "connector_files",
    "connector_status",
    "list_connectors",
    "load",
    "register",
    "summarize_trace",
    "unregister",
    "wait_running",
]

log = logging.getLogger(__name__)

_RETRY_STATUS = {409, 503}  # rebalance in progress / worker still starting


@dataclass(frozen=True)
class ConnectorConfig:
    """One Kafka Connect document: `{"name": ..., "config": {...}}` as read from a JSON file."""

    name: str
    config: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @property
    def connector_class(self) -> str:
        """The `connector.class` the worker must offer."""
        return self.config.get("connector.class", "")


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load(path: str | os.PathLike[str]) -> ConnectorConfig:
    """Read and check a connector file; values are strings as Kafka Connect stores them."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConnectError(f"cannot read connector file {path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not doc["name"]:
        raise ConnectError(
            f'{path}: expected {{"name": "...", "config": {{...}}}} with a non-empty name'
        )
    config = doc.get("config")
    if not isinstance(config, dict) or "connector.class" not in config:
        raise ConnectError(f'{path}: "config" must be an object with a "connector.class"')
    bad = [k for k, v in config.items() if isinstance(v, (dict, list)) or v is None]
    if bad:
        raise ConnectError(
            f"{path}: config values must be strings, numbers or booleans: {', '.join(bad)}"
        )
    return ConnectorConfig(doc["name"], {k: _as_str(v) for k, v in config.items()}, path)


def connector_files() -> list[Path]:
    """The connector JSON files shipped in the connect/ package, sorted by name."""
    folder = Path(str(resources.files("cdcsync.connect")))
    return sorted(folder.glob("*.json"))


def summarize_trace(trace: str | None, *, limit: int = 6) -> str:
    """The exception line and its `Caused by:` lines of a Java stack trace."""
    if not trace:
        return "(no trace)"
    lines = [ln.strip() for ln in trace.splitlines() if ln.strip()]
    keep = lines[:1] + [ln for ln in lines[1:] if ln.startswith("Caused by:")]
    return "\n".join(keep[:limit])


@contextmanager
def _client(connect_url: str, client: httpx.Client | None) -> Iterator[httpx.Client]:
    if client is not None:
        yield client
        return
    with httpx.Client(base_url=connect_url, timeout=60.0) as owned:
        yield owned


def _request(
    client: httpx.Client, method: str, url: str, *, deadline: float, **kw: Any
) -> httpx.Response:
    """One REST call, retried while Connect is rebalancing or starting."""
    while True:
        try:
            response = client.request(method, url, **kw)
        except httpx.TransportError as exc:
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise ConnectError(
                f"Kafka Connect at {client.base_url} is not reachable ({exc}); start the stack "
                "(`cdcsync local up` or `python -m cdcsync.stack up`)"
            ) from exc
        if response.status_code in _RETRY_STATUS and time.monotonic() < deadline:
            time.sleep(0.5)
            continue
        return response


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text


def list_connectors(connect_url: str, *, client: httpx.Client | None = None) -> list[str]:
    """Names of the connectors the worker knows."""
    with _client(connect_url, client) as http:
        response = _request(http, "GET", "/connectors", deadline=time.monotonic() + 10)
        if response.status_code != 200:
            raise ConnectError(f"GET /connectors: {response.status_code} {_error(response)}")
        return list(response.json())


def connector_status(
    connect_url: str, name: str, *, client: httpx.Client | None = None
) -> dict[str, Any] | None:
    """The `/status` document of one connector, or None if it is not registered."""
    with _client(connect_url, client) as http:
        response = _request(
            http, "GET", f"/connectors/{name}/status", deadline=time.monotonic() + 10
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ConnectError(f"GET status of {name}: {response.status_code} {_error(response)}")
        return dict(response.json())


def _failure(name: str, status: dict[str, Any]) -> str | None:
    connector = status.get("connector", {})
    if connector.get("state") == "FAILED":
        where = connector.get("worker_id")
        return f"connector {name} FAILED on {where}:\n{summarize_trace(connector.get('trace'))}"
    for task in status.get("tasks", []):
        if task.get("state") == "FAILED":
            return f"task {name}-{task.get('id')} FAILED:\n{summarize_trace(task.get('trace'))}"
    return None


def _running(status: dict[str, Any]) -> bool:
    tasks = status.get("tasks", [])
    return (
        status.get("connector", {}).get("state") == "RUNNING"
        and bool(tasks)
        and all(t.get("state") == "RUNNING" for t in tasks)
    )


def wait_running(connect_url: str, name: str, *, timeout_s: float = 180.0) -> None:
    """Until the connector and each of its tasks say RUNNING (after a restart of Connect);
    ConnectError with the last status seen after ``timeout_s``."""
    deadline, status = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            status = connector_status(connect_url, name)
        except (ConnectError, httpx.HTTPError):  # the REST API may not answer yet
            status = None
        if status is not None and _running(status):
            return
        time.sleep(0.5)
    raise ConnectError(f"connector {name} not RUNNING after {timeout_s:.0f}s: {status}")


def register(
    connect_url: str,
    path: str | os.PathLike[str],
    *,
    timeout: float = 120.0,
    client: httpx.Client | None = None,
) -> ConnectorConfig:
    """PUT the file's config if it differs, then wait until the connector and its tasks are RUNNING.

    A connector that already runs this exact config is left alone; one that FAILED is restarted
    once. Raises ConnectError with the Java trace summary if it fails, or on timeout.
    """
    connector = load(path)
    name = connector.name
    deadline = time.monotonic() + timeout
    with _client(connect_url, client) as http:
        current = _request(http, "GET", f"/connectors/{name}/config", deadline=deadline)
        wanted = {**connector.config, "name": name}
        changed = current.status_code != 200 or current.json() != wanted
        if changed:
            response = _request(
                http, "PUT", f"/connectors/{name}/config", json=connector.config, deadline=deadline
            )
            if response.status_code not in (200, 201):
                raise ConnectError(f"Kafka Connect rejected {connector.path}: {_error(response)}")
            log.info(
                "%s connector %s", "created" if response.status_code == 201 else "updated", name
            )
        restarted = changed
        while True:
            status = connector_status(connect_url, name, client=http)
            if status is not None:
                failure = _failure(name, status)
                if failure and not restarted:
                    log.warning("%s; restarting it once", failure.splitlines()[0])
                    _request(
                        http,
                        "POST",
                        f"/connectors/{name}/restart",
                        params={"includeTasks": "true", "onlyFailed": "true"},
                        deadline=deadline,
                    )
                    restarted = True
                elif failure:
                    raise ConnectError(
                        f"{failure}\nfull trace: GET {connect_url}/connectors/{name}/status"
                    )
                elif _running(status):
                    return connector
                elif status.get("connector", {}).get("state") in ("PAUSED", "STOPPED"):
                    raise ConnectError(
                        f"connector {name} is {status['connector']['state']}; "
                        f"resume it: curl -X PUT {connect_url}/connectors/{name}/resume"
                    )
            if time.monotonic() > deadline:
                raise ConnectError(
                    f"connector {name} not RUNNING after {timeout:.0f}s (last status: {status}); "
                    "see the Connect log (<home>/logs/connect.log)"
                )
            time.sleep(0.2)


def unregister(
    connect_url: str,
    name_or_path: str | os.PathLike[str],
    *,
    timeout: float = 30.0,
    client: httpx.Client | None = None,
) -> bool:
    """Delete a connector (by name or by its JSON file); False if it was not registered.

    Its offsets stay in Connect's offset topic and its replication slot in PostgreSQL.
    """
    text = os.fspath(name_or_path)
    name = load(text).name if text.endswith(".json") else text
    deadline = time.monotonic() + timeout
    with _client(connect_url, client) as http:
        response = _request(http, "DELETE", f"/connectors/{name}", deadline=deadline)
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 204):
            raise ConnectError(f"cannot delete connector {name}: {_error(response)}")
        while time.monotonic() < deadline:
            if name not in list_connectors(connect_url, client=http):
                return True
            time.sleep(0.2)
        raise ConnectError(f"connector {name} still listed {timeout:.0f}s after DELETE")
