"""Fixtures for tests on the real stack: PostgreSQL, Kafka, Kafka Connect + Debezium.

The stack is started (or reused) once per session and left running; each test
tags its rows with a unique suffix so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import yaml
from psycopg import sql

from cdcsync.demo.harness import TopicWatcher, WorkerProcess, start_group_at_end
from cdcsync.refapi.server import run_in_thread
from cdcsync.schemas.config import Config, TopicsConfig
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.commands import stack_up
from cdcsync.streams.config import load_config

# Ports of the reference API and the worker's web server; set them to run a second stack
# (CDCSYNC_* ports and home) next to the default one without collisions.
API_PORT = int(os.environ.get("CDCSYNC_IT_API_PORT", "8901"))
WEB_PORT = int(os.environ.get("CDCSYNC_IT_WEB_PORT", "6067"))
TOKEN = "it-" + uuid.uuid4().hex


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> StackSettings:
    return StackSettings()


@pytest.fixture(scope="session")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demo = Path(__file__).resolve().parents[2] / "demo" / "cdcsync.yaml"
    data = yaml.safe_load(demo.read_text())
    # A fresh consumer group and tables per session: state never leaks between runs
    # against a long-lived local stack; the worker fixture starts the group at the end.
    data["app"].update(
        id=f"cdcsync-it-{uuid.uuid4().hex[:8]}",
        web_port=WEB_PORT,
        broker=f"kafka://{StackSettings().bootstrap_servers}",  # the stack the tests run
    )
    data["entities"]["contact"]["poll"] = {"interval_s": 1}
    data["entities"]["contact"]["policies"]["target_delete"] = "delete"
    target = data["entities"]["contact"]["target"]["settings"]
    target.update(base_url=f"http://127.0.0.1:{API_PORT}", token_env="CDCSYNC_IT_TOKEN")
    path = tmp_path_factory.mktemp("config") / "cdcsync.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def config(config_path: Path) -> Config:
    return load_config(config_path)


@pytest.fixture(scope="session")
def running_stack(stack: StackSettings, config: Config) -> StackSettings:
    from cdcsync.streams.commands import stack_up

    stack_up(config)
    return stack


@pytest.fixture(scope="session")
def api(running_stack: StackSettings) -> Iterator[str]:
    server = run_in_thread(host="127.0.0.1", port=API_PORT, token=TOKEN)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def worker(
    running_stack: StackSettings, api: str, config_path: Path, config: Config
) -> Iterator[WorkerProcess]:
    start_group_at_end(
        running_stack.bootstrap_servers,
        config.app.id,
        [e.topic for e in config.entities.values()],
    )
    proc = WorkerProcess(
        config_path=config_path,
        log_path=Path(running_stack.home) / "logs" / "worker-it.log",
        env={"CDCSYNC_IT_TOKEN": TOKEN},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def db(running_stack: StackSettings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(running_stack.pg_dsn(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def watcher(running_stack: StackSettings, config: Config) -> Iterator[TopicWatcher]:
    w = TopicWatcher(
        running_stack.bootstrap_servers, [config.topics.results, config.topics.dead_letters]
    )
    yield w
    w.close()


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:10]


class Api:
    """Reads the reference API the way a test checks the external side."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})

    def contacts(self, tag: str) -> list[dict[str, Any]]:
        items, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = self.client.get("/api/v1/contacts", params=params).raise_for_status().json()
            items += page["items"]
            cursor = page.get("next")
            if not cursor:
                break
        return [i for i in items if str(i.get("email", "")).endswith(f".{tag}@example.org")]

    def edit(self, external_id: str, **fields: Any) -> dict[str, Any]:
        """Someone edits the object in the external system."""
        current = self.client.get(f"/api/v1/contacts/{external_id}").raise_for_status().json()
        body = {k: v for k, v in current.items() if k not in ("id", "rowId")} | fields
        return (
            self.client.put(f"/api/v1/contacts/{external_id}", json=body).raise_for_status().json()
        )

    def fault(self, **spec: Any) -> None:
        """Make the next matching requests fail (the reference API's fault injection)."""
        self.client.post("/_admin/faults", json=spec).raise_for_status()

    def create(self, **fields: Any) -> dict[str, Any]:
        return self.client.post("/api/v1/contacts", json=fields).raise_for_status().json()

    def delete(self, external_id: str) -> None:
        self.client.delete(f"/api/v1/contacts/{external_id}").raise_for_status()


@pytest.fixture
def external(api: str) -> Iterator[Api]:
    client = Api(api)
    yield client
    client.client.close()


@pytest.fixture(scope="module")
def dsn(request: pytest.FixtureRequest) -> str:
    """The stack's DSN; starts the stack only if PostgreSQL is not already answering."""
    settings = StackSettings()
    try:
        psycopg.connect(settings.pg_dsn(), connect_timeout=3).close()
    except psycopg.OperationalError:
        request.getfixturevalue("running_stack")
    return settings.pg_dsn()


@pytest.fixture
def scratch_table(dsn: str) -> Iterator[Callable[[str, str], str]]:
    """``create(prefix, columns)``: a table ``public.<prefix>_<random>``, dropped after the test.

    ``columns`` is the column list of ``CREATE TABLE``, as SQL.
    """
    created: list[sql.Identifier] = []
    with psycopg.connect(dsn, autocommit=True) as conn:

        def create(prefix: str, columns: str) -> str:
            name = f"{prefix}_{uuid.uuid4().hex[:10]}"
            ident = sql.Identifier("public", name)
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, sql.SQL(columns)))
            created.append(ident)
            return name

        try:
            yield create
        finally:
            for ident in created:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))


# -- A module's own worker, reference API and topics (test_operators, test_reconcile) ----------
# Such a module never sees the events of the other workers that consume the shared entity topic.

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "demo" / "cdcsync.yaml"
_Worker = TypeVar("_Worker", bound=WorkerProcess)


@pytest.fixture(scope="session")
def write_own_config(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``write_own_config(app_id, web_port=, api_port=, token_env=, **contact)``: the demo
    configuration for a module's own worker: its app id, web port and topics; the contact
    entity without the pull direction (only what the module causes), writing to the
    reference API on ``api_port``, with the ``contact`` settings added.
    """

    def write(app_id: str, *, web_port: int, api_port: int, token_env: str, **contact: Any) -> Path:
        data = yaml.safe_load(DEMO_CONFIG.read_text())
        data["app"].update(id=app_id, web_port=web_port)
        topics = data.setdefault("topics", {})
        for role, field in TopicsConfig.model_fields.items():
            if field.annotation is str:  # every topic of this config is its own
                topics[role] = f"{app_id}.{role}"
        entity = data["entities"]["contact"]
        entity.pop("poll", None)
        entity.update(contact)
        entity["target"]["settings"].update(
            base_url=f"http://127.0.0.1:{api_port}", token_env=token_env
        )
        path = tmp_path_factory.mktemp(app_id) / "cdcsync.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture(scope="session")
def load_own_config(running_stack: StackSettings) -> Callable[[Path], Config]:
    """``load_own_config(path)``: the configuration at ``path``, its topics created."""

    def load(path: Path) -> Config:
        config = load_config(path)
        stack_up(config, progress=lambda _msg: None)
        return config

    return load


@pytest.fixture(scope="session")
def run_own_worker(running_stack: StackSettings) -> Callable[..., Any]:
    """``with run_own_worker(proc, config, timeout_s=60):`` the worker process running, its
    consumer group started at the end of the entity topics (it sees only what comes next).
    """

    @contextlib.contextmanager
    def run(proc: _Worker, config: Config, *, timeout_s: float = 60.0) -> Iterator[_Worker]:
        start_group_at_end(
            running_stack.bootstrap_servers,
            config.app.id,
            [e.topic for e in config.entities.values()],
        )
        proc.start(timeout_s=timeout_s)
        try:
            yield proc
        finally:
            proc.stop()

    return run


@pytest.fixture(scope="session")
def watch_own_results(
    running_stack: StackSettings,
) -> Callable[[Config], contextlib.closing[TopicWatcher]]:
    """``with watch_own_results(config) as events:`` the config's results and dead letters."""

    def watch(config: Config) -> contextlib.closing[TopicWatcher]:
        topics = [config.topics.results, config.topics.dead_letters]
        return contextlib.closing(TopicWatcher(running_stack.bootstrap_servers, topics))

    return watch
