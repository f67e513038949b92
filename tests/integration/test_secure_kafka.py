"""The demo flow over SASL_SSL (SCRAM-SHA-512, keytool CA) on a second stack of its own.

`local up --secure` changes the broker's config, so running it on the shared stack
would restart that broker under the other tests. This module brings up its own
stack (home and ports apart, jars shared) with the secure listener, runs the
worker, the operator tools, a small bench run (``--config``) and Debezium's Connect
worker over SASL_SSL (the PLAINTEXT listener serves only the stack's own set-up), and
stops it at the end (its data stays for the next run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from cdcsync.connect.register import connector_files
from cdcsync.demo.harness import TopicWatcher, WorkerProcess, start_group_at_end
from cdcsync.operators.kafka_clients import kafka_python_settings
from cdcsync.refapi.server import run_in_thread
from cdcsync.schemas.config import Config
from cdcsync.stack import local
from cdcsync.stack.secure import client_security
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.config import load_config, read_config
from cdcsync.streams.topics import topic_specs

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("CDCSYNC_SECURE_IT_HOME", "/tmp/cdcsync-secure-it/.cdcsync"))
PORTS = {
    "pg_port": 25462,  # below the ephemeral ports, as test_cluster's
    "kafka_port": 19292,
    "controller_port": 19293,
    "secure_port": 19294,
    "connect_port": 18283,
}
API_PORT, WEB_PORT = 8931, 6087
BENCH_API_PORT, BENCH_WEB_PORT = 8932, 6088
TOKEN = "secure-it-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def secure_stack() -> StackSettings:
    return StackSettings(home=HOME, secure=True, **PORTS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def env(secure_stack: StackSettings) -> dict[str, str]:
    """What a cdcsync process needs to find this stack and the API's token."""
    return {
        **os.environ,
        "CDCSYNC_HOME": str(HOME),
        **{f"CDCSYNC_{k.upper()}": str(v) for k, v in PORTS.items()},
        "CDCSYNC_DATABASE_URL": secure_stack.pg_dsn(),
        "CDCSYNC_IT_TOKEN": TOKEN,
    }


def write_config(settings: StackSettings, path: Path, **security: Any) -> Path:
    """The demo configuration on the SASL_SSL listener (``security`` overrides)."""
    data = yaml.safe_load((ROOT / "demo" / "cdcsync.yaml").read_text())
    data["app"].update(
        id=f"cdcsync-secure-{uuid.uuid4().hex[:8]}",
        web_port=WEB_PORT,
        broker=f"kafka://{settings.secure_bootstrap_servers}",
        security={**client_security(settings), **security},
    )
    data["entities"]["contact"]["poll"] = {"interval_s": 1}
    target = data["entities"]["contact"]["target"]["settings"]
    target.update(base_url=f"http://127.0.0.1:{API_PORT}", token_env="CDCSYNC_IT_TOKEN")
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def config_path(secure_stack: StackSettings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(secure_stack, tmp_path_factory.mktemp("secure") / "cdcsync.yaml")


@pytest.fixture(scope="module")
def running(secure_stack: StackSettings, config_path: Path) -> Iterator[StackSettings]:
    started = time.monotonic()
    local.up(
        sql_files=[ROOT / "demo" / "schema.sql"],
        topics=topic_specs(read_config(config_path)),
        connector_files=connector_files(),
        settings=secure_stack,
    )
    print(f"secure stack up in {time.monotonic() - started:.1f}s")
    yield secure_stack
    local.down(settings=secure_stack)


@pytest.fixture(scope="module")
def config(config_path: Path, running: StackSettings) -> Config:
    """The configuration with its password read from the file `up --secure` wrote."""
    return load_config(config_path)


@pytest.fixture(scope="module")
def worker(
    running: StackSettings, config_path: Path, config: Config, env: dict[str, str]
) -> Iterator[WorkerProcess]:
    server = run_in_thread(host="127.0.0.1", port=API_PORT, token=TOKEN)
    client = kafka_python_settings(config.app.security)
    start_group_at_end(
        running.secure_bootstrap_servers, config.app.id, ["cdcsync.contact"], client=client
    )
    proc = WorkerProcess(
        config_path=config_path, log_path=running.logs_dir / "worker-secure-it.log", env=env
    )
    started = time.monotonic()
    proc.start(timeout_s=120)
    print(f"worker ready over SASL_SSL in {time.monotonic() - started:.1f}s")
    yield proc
    proc.stop()
    server.stop()


def cli(env: dict[str, str], config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdcsync.streams", *args],
        capture_output=True,
        text=True,
        env={**env, "CDCSYNC_CONFIG": str(config_path)},
        timeout=120,
    )


def test_demo_flow_over_sasl_ssl(
    worker: WorkerProcess, running: StackSettings, config: Config, config_path: Path, env: Any
) -> None:
    client = kafka_python_settings(config.app.security)
    watcher = TopicWatcher(
        running.secure_bootstrap_servers, [config.topics.results, config.topics.dead_letters],
        client=client,
    )  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(running.pg_dsn(), autocommit=True) as db:
        row = db.execute(
            "INSERT INTO contact (first_name, last_name, email) VALUES ('Sec', 'Ure', %s) "
            "RETURNING id",
            (f"sec.{tag}@example.org",),
        ).fetchone()
    assert row is not None
    entity_id = str(row[0])
    started = time.monotonic()
    events = watcher.collect(lambda _t, e: e["entity_id"] == entity_id, 1, timeout_s=90)
    print(f"change to result over SASL_SSL in {time.monotonic() - started:.1f}s")
    assert [(e["kind"], e["action"]) for _t, e in events] == [("result", "create")]
    external_id = events[0][1]["external"]["id"]
    api = httpx.get(
        f"http://127.0.0.1:{API_PORT}/api/v1/contacts/{external_id}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).raise_for_status()
    assert api.json()["email"] == f"sec.{tag}@example.org"

    # Debezium wrote it through SASL_SSL too: the Connect worker knows no other listener.
    worker_props = (running.connect_dir / "worker.properties").read_text()
    assert f"bootstrap.servers={running.secure_bootstrap_servers}\n" in worker_props
    assert "producer.security.protocol=SASL_SSL\n" in worker_props
    assert running.secure_password.get_secret_value() not in worker_props

    # The operator tools (kafka-python) over the same listener: create topics, read state,
    # publish a trigger.
    topics = cli(env, config_path, "topics")
    assert topics.returncode == 0, topics.stderr
    assert "topics: all existed" in topics.stdout + topics.stderr  # `local up` made them
    status = cli(env, config_path, "status", "contact", entity_id, "--as-json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"]["external_id"] == external_id
    trigger = cli(env, config_path, "trigger", "contact", entity_id)
    assert trigger.returncode == 0, trigger.stderr
    again = watcher.collect(lambda _t, e: e["entity_id"] == entity_id, 1, timeout_s=60)
    assert again and again[0][1]["kind"] == "result"
    watcher.close()


def test_a_small_bench_runs_over_sasl_ssl(
    running: StackSettings, config_path: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """The bench with ``--config``: its topics, clients and worker on the SASL_SSL listener."""
    out = tmp_path / "bench.json"
    args = ["--config", str(config_path), "--ids", "20", "--updates", "20", "--rate", "0",
            "--low-rate", "0", "--only", "live", "--api-port", str(BENCH_API_PORT),
            "--web-port", str(BENCH_WEB_PORT), "--out", str(out)]  # fmt: skip
    started = time.monotonic()
    command = [sys.executable, "-m", "cdcsync.bench", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    print(f"bench (live phase, 41 changes) over SASL_SSL in {time.monotonic() - started:.1f}s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    e2e, workload = report["end_to_end"], report["workload"]
    assert e2e["complete"] and e2e["dead_letters"] == 0, e2e
    assert e2e["actions"]["create"] == workload["seed_inserts"] + workload["inserts"]
    assert e2e["synced"] == workload["changes"]
    assert e2e["api_requests"] > 0  # the writes reached the reference API

    # The worker the bench started was configured for the secured listener, not 9092.
    run_dir = ROOT / "bench" / "results" / report["run"]
    worker_config = (run_dir / f"cdcsync-bench-{report['run']}-live.yaml").read_text()
    app = yaml.safe_load(worker_config)["app"]
    assert app["broker"] == f"kafka://{running.secure_bootstrap_servers}"
    assert app["security"]["security_protocol"] == "SASL_SSL"
    assert app["security"]["password"] == {"file": str(running.secure_dir / "client.password")}
    assert running.secure_password.get_secret_value() not in worker_config


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_a_wrong_password_fails_fast_at_start_up(
    running: StackSettings, env: dict[str, str], tmp_path: Path, mechanism: str
) -> None:
    path = write_config(
        running,
        tmp_path / "cdcsync.yaml",
        sasl_mechanism=mechanism,
        password={"env": "CDCSYNC_IT_KAFKA_PASSWORD"},
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "cdcsync.streams", "worker"],
        capture_output=True,
        text=True,
        env={**env, "CDCSYNC_CONFIG": str(path), "CDCSYNC_IT_KAFKA_PASSWORD": "not-the-password"},
        timeout=60,
    )
    elapsed = time.monotonic() - started
    print(f"wrong {mechanism} password refused in {elapsed:.1f}s")
    assert done.returncode != 0
    assert f"Kafka refused the SASL credentials for user {running.secure_user}" in done.stderr
    assert "CDCSYNC_IT_KAFKA_PASSWORD" in done.stderr
    assert "not-the-password" not in done.stderr + done.stdout
    assert elapsed < 30
