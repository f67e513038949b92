"""Operator commands and worker endpoints on the real stack.

Runs its own worker (app id ``cdcsync-ops-it-<random>``, web port 6068), reference API
(port 8902) and results/dead-letter topics, so it never sees the events of
the sync tests' worker, which may consume the same entity topic meanwhile.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition

from cdcsync.demo.harness import TopicWatcher, WorkerProcess
from cdcsync.errors import StackError
from cdcsync.refapi.server import RefApiThread, run_in_thread
from cdcsync.schemas.config import Config
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.webhooks import parse_secret, sign

API_PORT = 8902
WEB_PORT = 6068
# Fresh per session: a long-lived local stack keeps groups and their offsets between runs.
APP_ID = f"cdcsync-ops-it-{uuid.uuid4().hex[:8]}"
TOKEN = "ops-" + uuid.uuid4().hex
WEBHOOK_SECRET = "whsec_" + base64.b64encode(uuid.uuid4().bytes).decode()
WEB = f"http://127.0.0.1:{WEB_PORT}"
#: The worker's web API token (app.web.tokens.it, a viewer) and its header.
WEB_TOKEN = "it-viewer-" + uuid.uuid4().hex
VIEWER = {"Authorization": f"Bearer {WEB_TOKEN}"}


class OpsWorker(WorkerProcess):
    """A worker run by ops_worker.py, which also serves the operator endpoints."""

    def start(self, *, timeout_s: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "CDCSYNC_CONFIG": str(self.config_path)}
        script = Path(__file__).with_name("ops_worker.py")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), "worker", "-l", "info"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"worker exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{WEB}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise StackError(f"worker not ready after {timeout_s:.0f}s; see {self.log_path}")


@pytest.fixture(scope="module")
def ops_config_path(write_own_config: Callable[..., Path]) -> Path:
    path = write_own_config(
        APP_ID, web_port=WEB_PORT, api_port=API_PORT, token_env="CDCSYNC_OPS_IT_TOKEN"
    )
    data = yaml.safe_load(path.read_text())
    data["app"]["web"] = {"tokens": {"it": {"role": "viewer", "env": "CDCSYNC_OPS_IT_WEB"}}}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def ops_config(ops_config_path: Path, load_own_config: Callable[[Path], Config]) -> Config:
    return load_own_config(ops_config_path)


@pytest.fixture(scope="module")
def ops_api(running_stack: StackSettings) -> Iterator[RefApiThread]:
    with run_in_thread(host="127.0.0.1", port=API_PORT, token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def ops_worker(
    ops_config: Config, ops_api: RefApiThread, ops_config_path: Path, running_stack: StackSettings,
    run_own_worker: Any,
) -> Iterator[OpsWorker]:  # fmt: skip
    proc = OpsWorker(
        config_path=ops_config_path,
        log_path=Path(running_stack.home) / "logs" / "worker-ops-it.log",
        env={
            "CDCSYNC_OPS_IT_TOKEN": TOKEN,
            "CDCSYNC_WEBHOOK_SECRET_CONTACT": WEBHOOK_SECRET,
            "CDCSYNC_OPS_IT_WEB": WEB_TOKEN,
        },
    )
    with run_own_worker(proc, ops_config):
        yield proc


@pytest.fixture
def events(ops_worker: OpsWorker, ops_config: Config, watch_own_results: Any):
    with watch_own_results(ops_config) as watcher:
        yield watcher


@pytest.fixture
def api(ops_api: RefApiThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ops_api.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


@pytest.fixture
def cli(ops_config_path: Path):
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CDCSYNC_CONFIG": str(ops_config_path)}
        done = subprocess.run(
            [sys.executable, "-m", "cdcsync.streams", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"cdcsync {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    return run


# -- helpers -------------------------------------------------------------------------


def insert(db: Any, tag: str, name: str) -> str:
    (row_id,) = db.execute(
        "INSERT INTO contact (first_name, last_name, email) VALUES (%s, 'Ops', %s) RETURNING id",
        (name, f"{name.lower()}.{tag}@example.org"),
    ).fetchone()
    return str(row_id)


def ours(ids: set[str]) -> Any:
    """Events for these ids caused by source-side records.

    Other workers' pollers (other tests on the same stack) publish external-change
    records into the shared entity topic; this worker skips them ("stale
    reference"), and the tests ignore those results.
    """
    return lambda _t, e: e.get("entity_id") in ids and e.get("origin") != "external"


def wait_for(events: TopicWatcher, ids: set[str], count: int, timeout_s: float = 90) -> list:
    found = events.collect(ours(ids), count, timeout_s=timeout_s)
    assert len(found) >= count, f"expected {count} events for {ids}, got {found}"
    return [e for _t, e in found]


def objects(api: httpx.Client, tag: str) -> dict[str, dict[str, Any]]:
    items = api.get("/api/v1/contacts", params={"limit": 1000}).raise_for_status().json()["items"]
    return {o["email"]: o for o in items if o["email"].endswith(f".{tag}@example.org")}


def failing_creates(ops_api: RefApiThread, events: TopicWatcher, entity_id_of: Any) -> dict:
    """Insert a row while every create answers 422 (a permanent failure); return its
    dead letter once it arrives, then fix the cause (clear the fault).

    The fault lasts until the row's dead letter is in, so a create of another row
    (another test's, consumed meanwhile) cannot use it up first.
    """
    ops_api.call(
        lambda a: a.inject_fault(status=422, method="POST", path="/api/v1/contacts", count=None)
    )
    try:
        entity_id = entity_id_of()
        (letter,) = wait_for(events, {entity_id}, 1)
    finally:
        ops_api.call(lambda a: a.faults.clear())
    return letter


def webhook_headers(body: bytes, *, msg_id: str | None = None, ts: int | None = None) -> dict:
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    ts = int(time.time()) if ts is None else ts
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(parse_secret(WEBHOOK_SECRET), msg_id, ts, body),
        "content-type": "application/json",
    }


def published_webhook_ids(bootstrap: str, topic: str, since_ms: int) -> list[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        starts = consumer.offsets_for_times({tp: since_ms for tp in parts})
        ends = consumer.end_offsets(parts)
        todo = {tp: ends[tp] for tp in parts if starts[tp] is not None}
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, starts[tp].offset)
        found = []
        deadline = time.monotonic() + 30
        while todo and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    found += [v.decode() for k, v in r.headers if k == "cdcsync-webhook-id"]
            todo = {tp: end for tp, end in todo.items() if consumer.position(tp) < end}
        return found
    finally:
        consumer.close()


# -- HTTP ------------------------------------------------------------------------------


def test_health_readiness_and_metrics(ops_worker):
    assert httpx.get(f"{WEB}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{WEB}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    text = httpx.get(f"{WEB}/metrics").text
    for name in ("cdcsync_events_total", "cdcsync_consumer_lag", "cdcsync_external_api_seconds"):
        assert f"# TYPE {name.removesuffix('_total')}" in text
    lag = 'cdcsync_consumer_lag{partition="0",topic="cdcsync.contact"}'
    deadline = time.monotonic() + 15  # a partition's lag is known after its first fetch
    while lag not in text and time.monotonic() < deadline:
        time.sleep(0.5)
        text = httpx.get(f"{WEB}/metrics").text
    assert lag in text


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/healthz", {}, 200),  # the probes stay public
        ("GET", "/ui", {}, 401),  # deny by default: the page wants a login
        ("GET", "/ui/problems", {"Authorization": "Bearer wrong-" + "x" * 20}, 401),
        ("GET", "/ui/problems", VIEWER, 200),
        ("GET", "/table/state_contact/", {}, 401),  # no route is named without a credential
        ("GET", "/table/state_contact/", VIEWER, 404),  # Faust's table pages are off
        ("POST", "/ui/retry/contact/1", VIEWER, 403),  # a viewer acts on nothing
        ("POST", "/ui/retry/contact/1", {}, 401),
    ],
)
def test_the_running_worker_denies_by_default(ops_worker, method, path, headers, status):
    answer = httpx.request(method, f"{WEB}{path}", headers=headers)
    assert answer.status_code == status, answer.text[:200]


# -- status, trigger, dead letters, log ---------------------------------------------------


def test_status_shows_the_state_and_last_result_with_or_without_the_worker(
    ops_worker, db, events, api, cli, tag
):
    entity_id = insert(db, tag, "Stat")
    (created,) = wait_for(events, {entity_id}, 1)
    assert created["action"] == "create"

    data = json.loads(cli("status", "contact", entity_id, "--as-json").stdout)
    assert data["known"] and data["state"]["status"] == "synced"
    assert data["state"]["external_id"] == created["external"]["id"]
    assert data["link"] == created["external"]["link"]
    assert data["last_result"]["entity_id"] == entity_id  # may be another worker's echo
    assert objects(api, tag)[f"stat.{tag}@example.org"]["id"] == data["state"]["external_id"]
    human = cli("status", "contact", entity_id).stdout
    assert created["external"]["id"] in human and "synced" in human

    assert httpx.get(f"{WEB}/state/contact/{entity_id}").status_code == 401
    web = httpx.get(f"{WEB}/state/contact/{entity_id}", headers=VIEWER)
    assert web.status_code == 200
    assert web.json()["state"]["external_id"] == created["external"]["id"]
    assert httpx.get(f"{WEB}/state/contact/0", headers=VIEWER).status_code == 404
    assert httpx.get(f"{WEB}/state/nope/1", headers=VIEWER).status_code == 404
    assert cli("status", "contact", "0", check=False).returncode == 1


def test_a_dead_letter_is_redriven_once_after_its_cause_is_fixed(
    ops_worker, ops_api, db, events, api, cli, tag
):
    letter = failing_creates(ops_api, events, lambda: insert(db, tag, "Dlq"))
    entity_id = letter["entity_id"]
    assert letter["kind"] == "dead_letter" and letter["reason"] == "sink_permanent"
    assert objects(api, tag) == {}

    listed = cli("dlq", "list", "--entity", "contact", "--id", entity_id).stdout
    assert "sink_permanent" in listed and "1 dead letters" in listed
    shown = json.loads(cli("dlq", "show", "--id", entity_id).stdout)
    assert shown[0]["original"]["value"]["after"]["id"] == int(entity_id)

    out = cli("dlq", "redrive", "--id", entity_id).stdout
    assert "redrove 1 dead letters" in out
    (synced,) = wait_for(events, {entity_id}, 1)
    assert synced["kind"] == "result" and synced["action"] == "create"
    assert f"dlq.{tag}@example.org" in objects(api, tag)

    again = cli("dlq", "redrive", "--id", entity_id).stdout
    assert "redrove 0 dead letters" in again and "already redriven" in again
    assert "yes" in cli("dlq", "list", "--id", entity_id).stdout

    log = [
        json.loads(line) for line in cli("log", "--id", entity_id, "--as-json").stdout.splitlines()
    ]
    assert [(e["kind"], e.get("action")) for e in log] == [
        ("dead_letter", None),
        ("result", "create"),
    ]
    table = cli("log", "--entity", "contact", "--id", entity_id, "--action", "dead_letter").stdout
    assert "sink_permanent" in table and "create" not in table.split("\n", 2)[-1]


def test_trigger_syncs_one_entity_now(ops_worker, ops_api, db, events, api, cli, tag):
    letter = failing_creates(ops_api, events, lambda: insert(db, tag, "Trig"))
    entity_id = letter["entity_id"]
    assert letter["kind"] == "dead_letter"

    out = cli("trigger", "contact", entity_id).stdout
    assert "published to cdcsync.contact[" in out
    (synced,) = wait_for(events, {entity_id}, 1)
    assert (synced["kind"], synced["action"], synced["op"]) == ("result", "create", "read")
    assert synced["source"]["partition"] == letter["source"]["partition"]  # Debezium's key
    assert objects(api, tag)[f"trig.{tag}@example.org"]["firstName"] == "Trig"

    missing = cli("trigger", "contact", "0", check=False)
    assert missing.returncode == 1 and "no row" in missing.stderr


# -- replay ---------------------------------------------------------------------------


def test_replay_reprocesses_exactly_the_events_of_a_time_range(ops_worker, db, events, cli, tag):
    before = insert(db, tag, "Before")
    wait_for(events, {before}, 1)
    since = int(time.time() * 1000)
    inside = {insert(db, tag, "In1"), insert(db, tag, "In2")}
    wait_for(events, inside, 2)
    time.sleep(0.5)
    until = int(time.time() * 1000)
    after = insert(db, tag, "After")
    wait_for(events, {after}, 1)
    everyone = {before, after, *inside}
    ids = [arg for i in sorted(everyone) for arg in ("--id", i)]
    # --origin source: other tests' pollers publish external changes for these ids too
    window = ["--since", _iso(since), "--until", _iso(until), "--origin", "source"]

    dry = cli("replay", "contact", *window, *ids, "--dry-run").stdout
    assert "would replay 2 of" in dry

    assert "replayed 2 of" in cli("replay", "contact", *window, *ids).stdout
    found = events.collect(ours(everyone), 3, timeout_s=20)
    assert sorted(e["entity_id"] for _t, e in found) == sorted(inside)  # and nothing else


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def test_replay_and_resync_repair_a_damaged_external_copy(ops_worker, db, events, api, cli, tag):
    entity_id = insert(db, tag, "Damaged")
    (created,) = wait_for(events, {entity_id}, 1)
    api.delete(f"/api/v1/contacts/{created['external']['id']}").raise_for_status()
    since = _iso(created["received_ms"] - 5_000)
    cli("replay", "contact", "--since", since, "--id", entity_id)
    wait_for(events, {entity_id}, 1)
    assert f"damaged.{tag}@example.org" in objects(api, tag)


# -- resync ---------------------------------------------------------------------------


def test_resync_snapshots_the_filtered_rows_through_the_worker(ops_worker, db, events, cli, tag):
    ids = {insert(db, tag, f"Snap{i}") for i in range(3)}
    wait_for(events, ids, 3)
    other = insert(db, tag + "x", "Other")  # same prefix, outside the filter
    wait_for(events, {other}, 1)

    sql_filter = f"email LIKE '%.{tag}@example.org'"
    done = cli("resync", "contact", "--filter", sql_filter, "--timeout", "120")
    assert "3 of 3 rows on the topic" in done.stdout

    found = wait_for(events, ids | {other}, 3, timeout_s=60)
    assert sorted(e["entity_id"] for e in found) == sorted(ids)
    assert {e["op"] for e in found} == {"read"}
    bad = cli("resync", "contact", "--filter", "no_such_column = 1", check=False)
    assert bad.returncode == 1 and "no_such_column" in bad.stderr


# -- webhooks -------------------------------------------------------------------------


def test_webhooks_publish_when_signed_and_reject_everything_else(
    ops_worker, ops_config, db, events, cli, running_stack, tag
):
    entity_id = insert(db, tag, "Hook")
    wait_for(events, {entity_id}, 1)
    started = int(time.time() * 1000) - 1000
    body = json.dumps({"type": "contact.updated", "data": {"id": int(entity_id)}}).encode()
    url = f"{WEB}/webhooks/contact"

    good = webhook_headers(body)
    accepted = httpx.post(url, content=body, headers=good)
    assert accepted.status_code == 202, accepted.text
    (result,) = wait_for(events, {entity_id}, 1)
    assert result["source"]["offset"] == accepted.json()["offset"] and result["op"] == "read"

    rejected = {
        "replayed": (good, 401),
        "bad signature": ({**webhook_headers(body), "webhook-signature": "v1,AAAA"}, 401),
        "expired": (webhook_headers(body, ts=int(time.time()) - 600), 401),
        "unsigned": ({"content-type": "application/json"}, 401),  # no credential at all
        "other body": (webhook_headers(b'{"id": 1}'), 401),
    }
    for name, (headers, status) in rejected.items():
        answer = httpx.post(url, content=body, headers=headers)
        assert answer.status_code == status, (name, answer.text)
        assert answer.json()["error"]
    no_id = b'{"external_id": "x"}'
    assert httpx.post(url, content=no_id, headers=webhook_headers(no_id)).status_code == 400
    assert (
        httpx.post(f"{WEB}/webhooks/nope", content=body, headers=webhook_headers(body)).status_code
        == 404
    )

    published = published_webhook_ids(
        running_stack.bootstrap_servers, ops_config.entities["contact"].topic, started
    )
    assert published == [good["webhook-id"]]  # once, and nothing for the rejected calls
