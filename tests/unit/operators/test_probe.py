"""``cdcsync probe`` against the reference API taking on other APIs' habits (no services)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdcsync.errors import CdcsyncError
from cdcsync.operators.common import OperatorError
from cdcsync.operators.probe import ProbeOptions, ProbeReport, probe_entity
from cdcsync.refapi import RefApi, run_in_thread, serve
from cdcsync.schemas.config import Config

TOKEN = "probe-test-token"
ENV = {"PROBE_TOKEN": TOKEN}


def config_data(url: str, **settings: Any) -> dict[str, Any]:
    target = {"base_url": url, "collection_path": "/api/v1/contacts", "object_type": "contact",
              "token_env": "PROBE_TOKEN", **settings}  # fmt: skip
    entity = {"topic": "cdcsync.contact", "natural_key": ["email"], "target": {
        "provider": "rest", "settings": target},
        "mapping": {"firstName": "first_name", "email": "email"}}  # fmt: skip
    return {"entities": {"contact": entity}}


async def probe(api: RefApi, *, write: bool = False, env=ENV, **settings: Any) -> ProbeReport:
    config = Config.model_validate(config_data(api.url, **settings))
    return await probe_entity(config, "contact", ProbeOptions(write=write), environ=env)


@pytest.fixture
async def api() -> AsyncIterator[RefApi]:
    async with serve(port=0, token=TOKEN) as server:
        for i in range(5):
            server.store.create("contacts", {"firstName": f"A{i}", "email": f"a{i}@example.org"})
        yield server


def methods(api: RefApi) -> set[str]:
    return set(api.stats()["requests"]["by_method"])


async def test_the_reference_api_fits_the_defaults_and_nothing_is_written(api: RefApi):
    report = await probe(api)
    assert report.changes() == {}
    assert methods(api) == {"GET"}
    text = report.render()
    assert "items are under /items: set items_path: /items" in text
    assert "the configured settings fit everything the probe saw" in text
    assert "--write creates, updates and deletes one test object" in text


async def test_write_makes_one_test_object_and_leaves_none(api: RefApi):
    report = await probe(api, write=True)
    assert report.changes() == {}
    assert report.observed.marker and report.observed.marker.startswith("cdcsync-probe-")
    assert api.store.counts() == {"contacts": 5}
    steps = [c.step for c in report.observed.calls]
    assert steps[-5:] == [
        "create", "update, stale If-Match", "update", "delete", "read after delete",
    ]  # fmt: skip
    lines = report.render()
    assert "refused (412): edits never cross: set concurrency: if_match" in lines


async def test_json_server_habits(api: RefApi):
    habits = {"envelope": "bare", "paging": "page", "link_header": True, "total_header": True,
              "versions": False, "etag": False}  # fmt: skip
    api.habits = api.habits.changed(habits)
    api.writes.switch(if_match="ignore")
    report = await probe(api, write=True, limit_param="size", paging="page")
    assert report.changes() == {
        "items_path": "",
        "total_header": "X-Total-Count",
        "version_source": "none",
        "poll.version": "hash",
        "after_write": "next_poll",
        "concurrency": "none",
    }
    text = report.render()
    assert 'the listing is a bare array: set items_path: ""' in text
    assert "next page link in the Link header: paging: link_header is possible" in text
    assert api.store.counts() == {"contacts": 5}


async def test_directus_habits(api: RefApi):
    habits = {"envelope": "data", "paging": "offset", "etag": False,
              "create_answer": "location", "update_answer": "empty"}  # fmt: skip
    api.habits = api.habits.changed(habits)
    api.writes.switch(if_match="ignore")
    report = await probe(api, write=True, list_params={"meta": "total_count"})
    assert report.changes() == {
        "items_path": "/data",
        "total_path": "/meta/total_count",
        "paging": "offset",
        "object_path": "/data",
        "concurrency": "read_before_write",
    }
    assert "?offset=2 answers the next objects" in report.render()


async def test_drf_habits_and_a_limit_taken_for_a_filter(api: RefApi):
    api.habits = api.habits.changed({"envelope": "drf", "paging": "page"})
    report = await probe(api)
    assert report.changes() == {"items_path": "/results"}
    assert any("set limit_param" in a.seen for a in report.findings)


async def test_auth_query_keeps_the_key_out_of_the_report(api: RefApi):
    api.writes.switch(auth="query")
    report = await probe(api, write=True, auth="query")
    assert report.changes() == {}
    assert TOKEN not in report.render() and TOKEN not in str(report.to_json())


async def test_oauth2_client_credentials_from_an_integration(api: RefApi):
    api.writes.switch(auth="oauth2")
    data = config_data(api.url)
    settings = {"base_url": api.url, "auth": "oauth2", "token_url": f"{api.url}/oauth/token",
                "client_id": "cdcsync"}  # fmt: skip
    secrets = {"client_secret": {"env": "PROBE_SECRET"}}
    data["integrations"] = {"crm": {"provider": "rest", "settings": settings, "secrets": secrets}}
    data["entities"]["contact"]["target"] = {
        "integration": "crm",
        "settings": {"collection_path": "/api/v1/contacts", "object_type": "contact"},
    }
    config = Config.model_validate(data)
    report = await probe_entity(config, "contact", ProbeOptions(), environ={"PROBE_SECRET": TOKEN})
    assert report.changes() == {} and api.stats()["oauth"]["tokens_issued"] == 1
    with pytest.raises(CdcsyncError, match="client_id, the secret client_secret"):
        await probe_entity(config, "contact", ProbeOptions(), environ={"PROBE_SECRET": "wrong"})


@pytest.mark.parametrize(
    ("settings", "env", "expected"),
    [
        ({}, {"PROBE_TOKEN": "wrong"}, "HTTP 401.*Check the credential"),
        ({"collection_path": "/nowhere"}, ENV, "HTTP 404.*collection_path"),
        ({"base_url": "http://127.0.0.1:9"}, ENV, "cannot reach http://127.0.0.1:9.*base_url"),
    ],
)
async def test_failures_say_what_to_check(api: RefApi, settings, env, expected):
    with pytest.raises(OperatorError, match=expected):
        await probe(api, env=env, **settings)


async def test_another_provider_is_refused():
    data = config_data("http://x.test")
    data["entities"]["contact"]["target"] = {"provider": "postgres", "settings": {}}
    with pytest.raises(CdcsyncError, match="rest APIs only"):
        await probe_entity(Config.model_validate(data), "contact", ProbeOptions(), environ=ENV)


def test_the_command_prints_the_report(tmp_path: Path):
    with run_in_thread(token=TOKEN) as server:
        server.call(lambda a: a.store.create("contacts", {"firstName": "A", "email": "a@x"}))
        path = tmp_path / "cdcsync.yaml"
        path.write_text(yaml.safe_dump(config_data(server.url)))
        env = {**os.environ, **ENV, "CDCSYNC_CONFIG": str(path)}
        argv = [sys.executable, "-m", "cdcsync.streams", "probe", "contact", "--write"]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "the configured settings fit everything the probe saw" in done.stdout
        assert server.call(lambda a: a.store.counts()) == {"contacts": 1}
        env["PROBE_TOKEN"] = "wrong"
        refused = subprocess.run(argv[:-1], capture_output=True, text=True, env=env, timeout=120)
        assert refused.returncode == 1 and "cdcsync probe: GET" in refused.stderr
        assert "Traceback" not in refused.stderr
