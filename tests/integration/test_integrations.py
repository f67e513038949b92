"""Integrations on the real stack: two configurations of one provider, a disabled one, secrets
that never show, and the audit trail of every outgoing call.

One scenario runs once per module (its own tables, connector, topics and consumer
group; reference APIs on 8912-8914, the worker's web port 6072) and the tests
check what it left behind:

1. worker 1: ``crm_a`` (leads) and ``crm_b`` (accounts) enabled, ``helpdesk``
   (tickets) disabled; two rows of each are inserted;
2. worker 2, the same group restarted: ``helpdesk`` enabled, ``crm_b`` given a
   wrong token (one more account ends as a 401 dead letter);
3. ``cdcsync check``, ``cdcsync providers list`` and two broken configurations.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from cdcsync.demo.harness import TopicWatcher
from cdcsync.examples.runner import EventLog, Example, edit_config
from cdcsync.refapi.server import RefApiThread

PORTS = {"crm_a": 8912, "crm_b": 8913, "helpdesk": 8914}
WEB_PORT = 6072
TOKEN_ENVS = {
    "crm_a": "CDCSYNC_IT_CRM_A_TOKEN",
    "crm_b": "CDCSYNC_IT_CRM_B_TOKEN",
    "helpdesk": "CDCSYNC_IT_HELPDESK_TOKEN",
}
ENTITIES = {"lead": "crm_a", "account": "crm_b", "ticket": "helpdesk"}
COLLECTIONS = {"lead": "leads", "account": "accounts", "ticket": "tickets"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS public.it_lead (
    id bigserial PRIMARY KEY, name text, email text NOT NULL UNIQUE, notes text);
CREATE TABLE IF NOT EXISTS public.it_account (
    id bigserial PRIMARY KEY, company text, website text NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS public.it_ticket (
    id bigserial PRIMARY KEY, subject text, ref text NOT NULL UNIQUE);
ALTER TABLE public.it_lead REPLICA IDENTITY FULL;
ALTER TABLE public.it_account REPLICA IDENTITY FULL;
ALTER TABLE public.it_ticket REPLICA IDENTITY FULL;
"""


def _connector() -> dict[str, Any]:
    shipped = Path(__file__).resolve().parents[2] / "connect" / "cdcsync-postgres.json"
    config = dict(json.loads(shipped.read_text())["config"])
    config.pop("signal.data.collection")
    config.update({
        "topic.prefix": "cdcsync_it_integrations",
        "table.include.list": "public.it_lead,public.it_account,public.it_ticket",
        "slot.name": "cdcsync_it_integrations",
        "publication.name": "cdcsync_it_integrations",
        "transforms.route.regex": "cdcsync_it_integrations\\.public\\.(.*)",
        "transforms.route.replacement": "cdcsync.it.$1",
    })  # fmt: skip
    return {"name": "cdcsync-it-integrations", "config": config}


def _config(app_id: str) -> dict[str, Any]:
    topics = {
        k: f"cdcsync.it.integrations.{k}"
        for k in ("results", "dead_letters", "conflicts", "notifications", "audit")
    }
    integrations = {
        name: {
            "provider": "rest",
            "description": f"the {name} reference API",
            "enabled": name != "helpdesk",
            "params": {"api": "/api/v1"},
            "settings": {"base_url": f"http://127.0.0.1:{port}"},
            "secrets": {"token": {"env": TOKEN_ENVS[name]}},
        }
        for name, port in PORTS.items()
    }
    mappings = {
        "lead": ({"fullName": "name", "email": "email"}, ["email"]),
        "account": ({"companyName": "company", "website": "website"}, ["website"]),
        "ticket": ({"subject": "subject", "ref": "ref"}, ["ref"]),
    }
    entities = {
        entity: {
            "topic": f"cdcsync.it.it_{entity}",
            "natural_key": mappings[entity][1],
            "mapping": mappings[entity][0],
            "retry": {"max_attempts": 2, "base_s": 0.1, "cap_s": 0.5},
            "target": {
                "integration": integration,
                "settings": {
                    "collection_path": f"${{params.api}}/{COLLECTIONS[entity]}",
                    "object_type": entity,
                },
            },
        }
        for entity, integration in ENTITIES.items()
    }
    return {
        "app": {"id": app_id, "web_port": WEB_PORT},
        "topics": topics,
        "integrations": integrations,
        "entities": entities,
    }


@dataclass
class Scenario:
    """What the scenario saw; the tests assert on it."""

    tokens: dict[str, str]  # the secrets: every token given to any process
    ids: dict[str, list[str]] = field(default_factory=dict)  # entity -> row ids, in order
    apis: dict[str, RefApiThread] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # results, dead letters, ...
    audit: list[dict[str, Any]] = field(default_factory=list)
    objects_while_disabled: dict[str, int] = field(default_factory=dict)
    results_while_disabled: list[dict[str, Any]] = field(default_factory=list)
    ticket_offsets: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # command -> stdout + stderr
    exit_codes: dict[str, int] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)

    def objects(self, integration: str, entity: str) -> list[dict[str, Any]]:
        api = self.apis[integration]
        return api.call(lambda a: a.store.page(COLLECTIONS[entity], limit=1000).items)

    def stats(self, integration: str) -> dict[str, Any]:
        return self.apis[integration].call(lambda a: a.stats())


def _offsets(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """(committed, end) offsets of ``group`` on ``topic``, summed over its partitions."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        committed = admin.list_consumer_group_offsets(group)
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        return (
            sum(committed[tp].offset for tp in parts if tp in committed),
            sum(ends.values()),
        )
    finally:
        admin.close()
        consumer.close()


def _cli(args: list[str], config: Path, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "cdcsync.streams", *args],
        env={**os.environ, **env, "CDCSYNC_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def _insert(ex: Example, table: str, rows: list[dict[str, str]]) -> list[str]:
    ids = []
    with ex.db() as db:
        for row in rows:
            cols = list(row)
            got = db.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                f"({', '.join(['%s'] * len(cols))}) RETURNING id",
                [row[c] for c in cols],
            ).fetchone()
            assert got is not None
            ids.append(str(got[0]))
    return ids


def _scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, running_stack: Any) -> Iterator[Scenario]:
    folder = tmp_path_factory.mktemp("integrations")
    (folder / "schema.sql").write_text(SCHEMA)
    (folder / "cdcsync-it-integrations.json").write_text(json.dumps(_connector(), indent=2))
    app_id = f"cdcsync-it-integrations-{uuid.uuid4().hex[:8]}"
    (folder / "cdcsync.yaml").write_text(yaml.safe_dump(_config(app_id), sort_keys=False))

    def phase_two(data: dict[str, Any]) -> None:
        data["integrations"]["helpdesk"]["enabled"] = True

    enabled_path = edit_config(folder / "cdcsync.yaml", folder / "enabled.yaml", phase_two)
    tokens = {name: f"it-{name}-{uuid.uuid4().hex}" for name in PORTS}
    wrong_b = f"it-wrong-{uuid.uuid4().hex}"
    good_env = {TOKEN_ENVS[n]: t for n, t in tokens.items()}
    s = Scenario(tokens={**tokens, "wrong_b": wrong_b})
    tag = uuid.uuid4().hex[:8]

    with Example(folder, say=lambda _line: None) as ex:
        ex.prepare()
        for name, port in PORTS.items():
            s.apis[name] = ex.serve_api(port=port, token=tokens[name])
        log_dir = ex.settings.logs_dir
        s.logs = [
            log_dir / "worker-it-integrations-1.log",
            log_dir / "worker-it-integrations-2.log",
        ]
        for log in s.logs:
            log.unlink(missing_ok=True)
        events = ex.watch(
            [ex.config.topics.results, ex.config.topics.dead_letters,
             ex.config.topics.notifications, ex.config.topics.conflicts]
        )  # fmt: skip
        audit = EventLog(TopicWatcher(ex.settings.bootstrap_servers, [ex.config.topics.audit]))

        # 1. helpdesk disabled: its tickets wait in their topic.
        ex.start_worker(env=good_env, log_path=s.logs[0])
        topic = ex.config.entities["ticket"].topic
        start, _ = _offsets(ex.settings.bootstrap_servers, app_id, topic)
        s.ids["lead"] = _insert(
            ex,
            "it_lead",
            [{"name": f"Lead {i}", "email": f"lead{i}.{tag}@example.org"} for i in range(2)],
        )
        s.ids["account"] = _insert(
            ex,
            "it_account",
            [
                {"company": f"Account {i}", "website": f"https://a{i}.{tag}.example"}
                for i in range(2)
            ],
        )
        s.ids["ticket"] = _insert(ex, "it_ticket", [
            {"subject": f"Ticket {i}", "ref": f"T-{i}-{tag}"} for i in range(2)])  # fmt: skip
        synced = {("lead", i) for i in s.ids["lead"]} | {("account", i) for i in s.ids["account"]}
        events.wait(
            lambda e: e.get("action") == "create" and (e["entity"], e["entity_id"]) in synced, 4
        )
        events.drain(3)  # time enough for the tickets, were they consumed
        s.metrics.append(_scrape(WEB_PORT))
        s.objects_while_disabled = {
            name: len(s.objects(name, entity)) for entity, name in ENTITIES.items()
        }
        s.results_while_disabled = [e for e in events.drain(0.5) if e["entity"] == "ticket"]
        s.results_while_disabled += [e for _t, e in events.seen if e["entity"] == "ticket"]
        committed, end = _offsets(ex.settings.bootstrap_servers, app_id, topic)
        s.ticket_offsets = {"start": start, "committed": committed, "end": end}
        ex.stop_worker()

        # 2. restarted with helpdesk enabled, and a wrong token for crm_b.
        env = {**good_env, TOKEN_ENVS["crm_b"]: wrong_b}
        ex.start_worker(env=env, config_path=enabled_path, fresh_group=False, log_path=s.logs[1])
        tickets = set(s.ids["ticket"])
        events.wait(  # ids repeat across tables (each has its own sequence): name the entity
            lambda e: e["entity"] == "ticket" and e.get("action") == "create"
            and e["entity_id"] in tickets, 2,
        )  # fmt: skip
        s.ids["account"] += _insert(
            ex, "it_account", [{"company": "Refused", "website": f"https://refused.{tag}.example"}]
        )
        refused = s.ids["account"][-1]
        events.wait(
            lambda e: (
                e["kind"] == "dead_letter" and (e["entity"], e["entity_id"]) == ("account", refused)
            ),
            1,
        )
        events.drain(2)
        s.metrics.append(_scrape(WEB_PORT))
        ex.stop_worker()
        s.events = [e for _t, e in events.seen]

        # Every call was audited before it was sent: the trail matches the APIs' counts.
        total = sum(s.stats(name)["requests"]["total"] for name in PORTS)
        mine = tuple(f"http://127.0.0.1:{p}" for p in PORTS.values())
        audit.wait(lambda e: e["recipient"] in mine, total, timeout_s=30)
        audit.drain(1)
        s.audit = [e for _t, e in audit.seen if e["recipient"] in mine]
        audit.watcher.close()

        # 3. the operator commands, with the real tokens in their environment.
        for args in (["check"], ["providers", "list"], ["providers", "list", "--as-json"]):
            code, out = _cli(args, enabled_path, good_env)
            s.outputs[" ".join(args)], s.exit_codes[" ".join(args)] = out, code

        def inline_token(data: dict[str, Any]) -> None:
            data["integrations"]["crm_a"]["settings"]["token"] = tokens["crm_a"]

        def token_as_number(data: dict[str, Any]) -> None:
            data["integrations"]["crm_b"]["settings"]["timeout_s"] = tokens["crm_b"]

        for name, edit in (("inline token", inline_token), ("token as number", token_as_number)):
            broken = edit_config(folder / "cdcsync.yaml", folder / f"{name}.yaml", edit)
            for command in (["check"], ["worker"]):
                key = f"{' '.join(command)} ({name})"
                s.exit_codes[key], s.outputs[key] = _cli(command, broken, good_env)
        yield s


def test_each_crm_gets_only_its_entitys_objects(scenario: Scenario) -> None:
    leads = scenario.objects("crm_a", "lead")
    accounts = scenario.objects("crm_b", "account")
    assert sorted(o["fullName"] for o in leads) == ["Lead 0", "Lead 1"]
    assert sorted(o["companyName"] for o in accounts) == ["Account 0", "Account 1"]
    assert all(set(o) == {"id", "rowId", "fullName", "email"} for o in leads)
    assert all(set(o) == {"id", "rowId", "companyName", "website"} for o in accounts)
    # Nothing crossed over: each API holds one collection, its own.
    assert scenario.stats("crm_a")["records"] == {"leads": 2}
    assert scenario.stats("crm_b")["records"] == {"accounts": 2}
    for entity in ("lead", "account"):
        results = [
            e for e in scenario.events
            if e["kind"] == "result" and e["entity"] == entity and e["action"] == "create"
        ]  # fmt: skip
        port = PORTS[ENTITIES[entity]]
        assert {e["entity_id"] for e in results} == set(scenario.ids[entity][:2])
        assert all(e["external"]["link"].startswith(f"http://127.0.0.1:{port}/") for e in results)


def test_a_disabled_integration_consumes_nothing(scenario: Scenario) -> None:
    assert scenario.objects_while_disabled == {"crm_a": 2, "crm_b": 2, "helpdesk": 0}
    assert scenario.results_while_disabled == []
    offsets = scenario.ticket_offsets
    assert offsets["committed"] == offsets["start"], offsets  # nothing consumed ...
    assert offsets["end"] >= offsets["start"] + 2, offsets  # ... and the tickets are pending


def test_a_re_enabled_integration_syncs_its_pending_work(scenario: Scenario) -> None:
    # Restarted with it enabled, the same group picks the pending tickets up.
    tickets = scenario.objects("helpdesk", "ticket")
    assert sorted(o["subject"] for o in tickets) == ["Ticket 0", "Ticket 1"]
    created = {
        e["entity_id"] for e in scenario.events
        if e["entity"] == "ticket" and e.get("action") == "create"
    }  # fmt: skip
    assert created == set(scenario.ids["ticket"])


def test_a_wrong_token_dead_letters_with_a_hint(scenario: Scenario) -> None:
    refused = scenario.ids["account"][-1]
    (letter,) = [
        e
        for e in scenario.events
        if e["kind"] == "dead_letter" and (e["entity"], e["entity_id"]) == ("account", refused)
    ]
    assert "401" in letter["error"] and "secret `token`" in letter["error"], letter["error"]
    assert scenario.stats("crm_b")["requests"]["by_status"].get("401", 0) >= 1


def test_secrets_never_show(scenario: Scenario) -> None:
    assert scenario.exit_codes["check"] == 0, scenario.outputs["check"]
    assert "configuration ok" in scenario.outputs["check"]
    assert "crm_a" in scenario.outputs["providers list"]
    for key, code in scenario.exit_codes.items():
        if "(" in key:  # a broken configuration: refused, saying where
            assert code != 0, (key, scenario.outputs[key])
            assert "crm_" in scenario.outputs[key], (key, scenario.outputs[key])
    places: dict[str, str] = {
        "results and dead letters": json.dumps(scenario.events),
        "audit topic": json.dumps(scenario.audit),
        "metrics": "\n".join(scenario.metrics),
        **{f"`cdcsync {k}`": v for k, v in scenario.outputs.items()},
        **{f"log {p.name}": p.read_text(errors="replace") for p in scenario.logs},
    }
    assert any(e["kind"] == "dead_letter" for e in scenario.events)
    assert all(places.values()), [k for k, v in places.items() if not v]
    for name, secret in scenario.tokens.items():
        for where, text in places.items():
            assert secret not in text, f"the {name} token shows in {where}"


def test_every_outgoing_call_is_audited(scenario: Scenario) -> None:
    for integration, port in PORTS.items():
        recipient = f"http://127.0.0.1:{port}"
        records = [r for r in scenario.audit if r["recipient"] == recipient]
        stats = scenario.stats(integration)["requests"]
        assert len(records) == stats["total"], (integration, len(records), stats)
        assert {r["method"] for r in records} == set(stats["by_method"])
        assert all(r["integration"] == integration and r["provider"] == "rest" for r in records)
    # Per synced change: its calls (look up by natural key, create), each with a digest.
    objects = {
        entity: {o["id"]: o for o in scenario.objects(ENTITIES[entity], entity)}
        for entity in ENTITIES
    }
    for e in scenario.events:
        if e["kind"] != "result" or e["action"] != "create":
            continue
        mine = [r for r in scenario.audit if r["entity_id"] == e["entity_id"]
                and r["entity"] == e["entity"]]  # fmt: skip
        assert len(mine) == e["api_calls"] == 2, (e, mine)
        find, post = sorted(mine, key=lambda r: r["sent_ms"])
        collection = f"/api/v1/{COLLECTIONS[e['entity']]}"
        assert (find["method"], find["target"], find["payload_digest"]) == ("GET", collection, None)
        assert (post["method"], post["target"]) == ("POST", collection)
        stored = objects[e["entity"]][e["external"]["id"]]
        body = json.dumps(
            {k: v for k, v in stored.items() if k not in ("id", "rowId")},
            ensure_ascii=False, separators=(",", ":"),
        ).encode()  # fmt: skip
        assert post["payload_digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
        assert post["payload_bytes"] == len(body)
    # The refused account's calls are on the trail too.
    refused = scenario.ids["account"][-1]
    calls = [
        r["method"] for r in scenario.audit if (r["entity"], r["entity_id"]) == ("account", refused)
    ]
    assert calls == ["GET"]
