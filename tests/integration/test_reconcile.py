"""``cdcsync reconcile`` on the real stack: it finds damage done behind the sync's back,
and ``--repair`` has the worker put it right.

Runs its own worker (a fresh app id per session: its own consumer group, state
changelog, results topics), reference API (port 8903) and web port (6069). The
entity's ``filter`` selects only this session's rows (``last_name`` = a unique
tag), so neither the worker nor reconcile (nor ``--repair``'s trigger records)
touches the rows of the other tests sharing the table and the entity topic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cdcsync.demo.harness import TopicWatcher, WorkerProcess
from cdcsync.refapi.server import RefApiThread, run_in_thread
from cdcsync.schemas.config import Config
from cdcsync.stack.settings import StackSettings

API_PORT = 8903
WEB_PORT = 6069
APP_ID = f"cdcsync-reconcile-it-{uuid.uuid4().hex[:8]}"
TOKEN = "rc-" + uuid.uuid4().hex
TAG = uuid.uuid4().hex[:10]  # every row of this module has last_name = TAG

# The CLI with the reconcile command attached (a no-op once commands/__init__ registers it).
CLI = """
from cdcsync.streams.app import create_app
from cdcsync.streams.commands import reconcile
from cdcsync.streams.config import load_config
config = load_config()
app = create_app(config)
reconcile.register(app, config)
app.main()
"""


@pytest.fixture(scope="module")
def rc_config_path(write_own_config: Callable[..., Path]) -> Path:
    # No pull: the damage must stay on the external side.
    return write_own_config(
        APP_ID, web_port=WEB_PORT, api_port=API_PORT, token_env="CDCSYNC_RC_IT_TOKEN",
        filter={"last_name": TAG},
    )  # fmt: skip


@pytest.fixture(scope="module")
def rc_config(rc_config_path: Path, load_own_config: Callable[[Path], Config]) -> Config:
    return load_own_config(rc_config_path)


@pytest.fixture(scope="module")
def rc_api(running_stack: StackSettings) -> Iterator[RefApiThread]:
    with run_in_thread(host="127.0.0.1", port=API_PORT, token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def rc_worker(
    rc_config: Config, rc_api: RefApiThread, rc_config_path: Path, running_stack: StackSettings,
    run_own_worker: Any,
) -> Iterator[WorkerProcess]:  # fmt: skip
    proc = WorkerProcess(
        config_path=rc_config_path,
        log_path=Path(running_stack.home) / "logs" / "worker-reconcile-it.log",
        env={"CDCSYNC_RC_IT_TOKEN": TOKEN},
    )
    with run_own_worker(proc, rc_config, timeout_s=120):
        yield proc


@pytest.fixture
def events(rc_worker: WorkerProcess, rc_config: Config, watch_own_results: Any):
    with watch_own_results(rc_config) as watcher:
        yield watcher


@pytest.fixture
def api(rc_api: RefApiThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rc_api.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def reconcile(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CDCSYNC_CONFIG": str(config_path), "CDCSYNC_RC_IT_TOKEN": TOKEN}
    return subprocess.run(
        [sys.executable, "-c", CLI, "reconcile", "contact", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def insert(db: Any, name: str) -> str:
    (row_id,) = db.execute(
        "INSERT INTO contact (first_name, last_name, email) VALUES (%s, %s, %s) RETURNING id",
        (name, TAG, f"{name.lower()}.{TAG}@example.org"),
    ).fetchone()
    return str(row_id)


def wait_for(events: TopicWatcher, ids: set[str], count: int) -> list[dict[str, Any]]:
    """The next ``count`` events for ``ids`` that did something (skips, e.g. the poll's
    echoes of our own writes, come and go with timing and are not counted)."""
    found = events.collect(
        lambda _t, e: e.get("entity_id") in ids and e.get("action") != "skip",
        count,
        timeout_s=90,
    )
    assert len(found) >= count, f"expected {count} events for {ids}, got {found}"
    return [e for _t, e in found]


def objects(api: httpx.Client) -> dict[str, dict[str, Any]]:
    items = api.get("/api/v1/contacts", params={"limit": 1000}).raise_for_status().json()["items"]
    return {o["email"]: o for o in items if o["email"].endswith(f".{TAG}@example.org")}


def ours(report: dict[str, Any], category: str, ids: set[str]) -> list[dict[str, Any]]:
    return [item for item in report[category] if item.get("entity_id") in ids]


def test_reconcile_finds_external_damage_and_repair_undoes_it(
    rc_worker, rc_config_path, db, events, api
):
    ids = {name: insert(db, name) for name in ("Keep", "Edit", "Gone")}
    mine = set(ids.values())
    created = wait_for(events, mine, 3)
    assert {e["action"] for e in created} == {"create"}, created
    before = objects(api)
    assert len(before) == 3

    clean = reconcile(rc_config_path, "--as-json")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["counts"]["equal"] == 3

    edited = before[f"edit.{TAG}@example.org"]
    body = {k: v for k, v in edited.items() if k not in ("id", "rowId")} | {"firstName": "Hand"}
    api.put(f"/api/v1/contacts/{edited['id']}", json=body).raise_for_status()
    gone = before[f"gone.{TAG}@example.org"]
    api.delete(f"/api/v1/contacts/{gone['id']}").raise_for_status()

    found = reconcile(rc_config_path, "--as-json")
    assert found.returncode == 3, found.stderr
    report = json.loads(found.stdout)
    assert ours(report, "missing_external", mine) == [
        {"entity_id": ids["Gone"], "external_id": gone["id"]}
    ]
    assert ours(report, "differs", mine) == [
        {
            "entity_id": ids["Edit"],
            "external_id": edited["id"],
            "fields": [{"field": "firstName", "source": "Edit", "external": "Hand"}],
            "linked_by": "state",
        }
    ]
    assert report["missing_source"] == [] and report["unmappable"] == []
    assert report["counts"]["equal"] == 1  # the filter selects exactly this test's rows
    assert "listing external objects of contact" in found.stderr

    text = reconcile(rc_config_path)
    assert text.returncode == 3
    assert "missing_external (1):" in text.stdout and "differs (1):" in text.stdout
    assert "firstName: source 'Edit' != external 'Hand'" in text.stdout

    repaired = reconcile(rc_config_path, "--repair")
    assert repaired.returncode == 3, repaired.stderr
    assert "sent 2 trigger record(s)" in repaired.stdout
    results = wait_for(events, {ids["Edit"], ids["Gone"]}, 2)
    assert sorted((e["entity_id"], e["action"]) for e in results) == sorted(
        [(ids["Edit"], "update"), (ids["Gone"], "create")]
    ), results

    after = reconcile(rc_config_path, "--as-json")
    assert after.returncode == 0, after.stdout + after.stderr
    assert json.loads(after.stdout)["counts"] == {
        "missing_external": 0,
        "missing_source": 0,
        "differs": 0,
        "unmappable": 0,
        "equal": 3,
    }
    now = objects(api)
    assert now[f"edit.{TAG}@example.org"]["firstName"] == "Edit"
    assert now[f"gone.{TAG}@example.org"]["firstName"] == "Gone"
    assert now[f"gone.{TAG}@example.org"]["id"] != gone["id"]  # re-created
    assert "both sides are equal" in reconcile(rc_config_path).stdout
