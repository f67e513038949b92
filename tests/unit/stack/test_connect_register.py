"""Connector files load and register idempotently over Kafka Connect's REST API (faked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from cdcsync.connect.register import connector_files, load, register, summarize_trace, unregister
from cdcsync.errors import ConnectError

URL = "http://connect.test"
TRACE = (
    "org.apache.kafka.connect.errors.ConnectException: boom\n"
    "\tat io.debezium.Foo.bar(Foo.java:1)\n"
    "Caused by: org.postgresql.util.PSQLException: password authentication failed\n"
    "\tat x.y(Z.java:2)\n"
)


def _shipped() -> Path:
    (path,) = [p for p in connector_files() if p.name == "cdcsync-postgres.json"]
    return path


def test_shipped_connector_has_the_keys_users_know() -> None:
    c = load(_shipped())
    assert c.name == "cdcsync-postgres"
    cfg = c.config
    expected = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "database.password": "${env:CDCSYNC_PG_PASSWORD}",
        "table.include.list": "public.contact,public.debezium_signal",
        "publication.autocreate.mode": "filtered",
        "signal.data.collection": "public.debezium_signal",
        "skipped.operations": "none",
        "decimal.handling.mode": "string",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": r"cdcsync\.public\.(.*)",
        "transforms.route.replacement": "cdcsync.$1",
    }
    assert {key: cfg.get(key) for key in expected} == expected
    for key, value in cfg.items():
        if key.startswith("database.") and key != "database.dbname":
            assert value.startswith("${env:"), f"{key} must come from the worker's environment"


def test_load_rejects_bad_documents(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"config": {}}')
    with pytest.raises(ConnectError, match="non-empty name"):
        load(bad)
    bad.write_text('{"name": "x", "config": {"a": 1}}')
    with pytest.raises(ConnectError, match=r"connector\.class"):
        load(bad)
    bad.write_text("{not json")
    with pytest.raises(ConnectError, match="cannot read"):
        load(bad)
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"name": "x", "config": {"connector.class": "C", "n": 1, "b": True}}))
    assert load(ok).config == {"connector.class": "C", "n": "1", "b": "true"}


def test_summarize_trace_keeps_exception_and_causes() -> None:
    assert summarize_trace(TRACE) == (
        "org.apache.kafka.connect.errors.ConnectException: boom\n"
        "Caused by: org.postgresql.util.PSQLException: password authentication failed"
    )
    assert summarize_trace(None) == "(no trace)"


class FakeConnect:
    """Just enough of the Connect REST API: config get/put, status, restart, delete."""

    def __init__(self, *, task_states: list[str]) -> None:
        self.configs: dict[str, dict[str, str]] = {}
        self.task_states = task_states
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        parts = request.url.path.strip("/").split("/")
        if parts == ["connectors"]:
            return httpx.Response(200, json=list(self.configs))
        name = parts[1]
        if request.method == "GET" and parts[2:] == ["config"]:
            if name not in self.configs:
                return httpx.Response(404, json={"message": f"Connector {name} not found"})
            return httpx.Response(200, json={**self.configs[name], "name": name})
        if request.method == "PUT" and parts[2:] == ["config"]:
            created = name not in self.configs
            self.configs[name] = json.loads(request.content)
            return httpx.Response(201 if created else 200, json={"name": name})
        if parts[2:] == ["status"]:
            state = self.task_states.pop(0) if len(self.task_states) > 1 else self.task_states[0]
            task: dict[str, Any] = {"id": 0, "state": state, "worker_id": "w"}
            if state == "FAILED":
                task["trace"] = TRACE
            return httpx.Response(
                200, json={"name": name, "connector": {"state": "RUNNING"}, "tasks": [task]}
            )
        if request.method == "POST" and parts[2:] == ["restart"]:
            return httpx.Response(202, json={})
        if request.method == "DELETE":
            existed = self.configs.pop(name, None) is not None
            return httpx.Response(204 if existed else 404, json={})
        return httpx.Response(500, json={"message": "unexpected"})


def _client(fake: FakeConnect) -> httpx.Client:
    return httpx.Client(base_url=URL, transport=httpx.MockTransport(fake))


def test_register_puts_then_waits_for_running_and_is_idempotent() -> None:
    fake = FakeConnect(task_states=["UNASSIGNED", "RUNNING"])
    with _client(fake) as client:
        register(URL, _shipped(), client=client, timeout=5)
        assert "PUT /connectors/cdcsync-postgres/config" in fake.calls
        fake.calls.clear()
        register(URL, _shipped(), client=client, timeout=5)
    assert not [c for c in fake.calls if c.startswith("PUT")], "unchanged config is not re-PUT"


def test_register_changed_config_is_put_again(tmp_path: Path) -> None:
    fake = FakeConnect(task_states=["RUNNING"])
    doc = json.loads(_shipped().read_text())
    with _client(fake) as client:
        register(URL, _shipped(), client=client, timeout=5)
        doc["config"]["poll.interval.ms"] = "100"
        changed = tmp_path / "c.json"
        changed.write_text(json.dumps(doc))
        fake.calls.clear()
        register(URL, changed, client=client, timeout=5)
    assert "PUT /connectors/cdcsync-postgres/config" in fake.calls
    assert fake.configs["cdcsync-postgres"]["poll.interval.ms"] == "100"


def test_register_failed_task_restarts_once_then_raises_with_trace() -> None:
    fake = FakeConnect(task_states=["FAILED"])
    with _client(fake) as client:
        fake.configs["cdcsync-postgres"] = load(_shipped()).config
        with pytest.raises(ConnectError, match=r"(?s)FAILED.*password authentication failed"):
            register(URL, _shipped(), client=client, timeout=5)
    assert fake.calls.count("POST /connectors/cdcsync-postgres/restart") == 1


def test_unregister_by_path_or_name() -> None:
    fake = FakeConnect(task_states=["RUNNING"])
    with _client(fake) as client:
        register(URL, _shipped(), client=client, timeout=5)
        assert unregister(URL, _shipped(), client=client)
        assert not unregister(URL, "cdcsync-postgres", client=client)
