"""The soak's own table, connector, topics and configuration, and their removal.

Everything is the soak's alone: ``public.soak_contact``, the ``cdcsync_soak`` slot and
publication, and topics and consumer groups named after the run
(``cdcsync.soak.<run>.*``, app ``cdcsync-soak-<run>``), so shared demo, test and bench
data are never touched. Setup first removes what an earlier (possibly crashed) run left.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from kafka.errors import KafkaError

from cdcsync.bench.broker import BenchKafka
from cdcsync.bench.workload import contact_ddl
from cdcsync.connect.register import register, unregister
from cdcsync.connect.slots import drop_slot
from cdcsync.soak.checks import MAPPING
from cdcsync.stack.kafka import TopicSpec
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.config import load_config
from cdcsync.streams.topics import topic_specs

__all__ = ["TABLE", "SoakNames", "cleanup", "create", "write_config"]

TABLE = "soak_contact"
SLOT = "cdcsync_soak"
CONNECTOR_TEMPLATE = Path(__file__).resolve().parent / "connector.json"


class SoakNames:
    """The names one run uses: its app id, topics and connector."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.app_id = f"cdcsync-soak-{run_id}"
        self.prefix = f"cdcsync.soak.{run_id}"
        self.entity_topic = f"{self.prefix}.{TABLE}"
        self.results = f"{self.prefix}.results"
        self.dead_letters = f"{self.prefix}.deadletters"
        self.connector = f"cdcsync-soak-{run_id}"


def cleanup(stack: StackSettings, kafka: BenchKafka) -> None:
    """Remove every soak connector, the slot, publication, table, topics and groups."""
    names = httpx.get(f"{stack.connect_url}/connectors", timeout=30).json()
    for name in names:
        if name.startswith("cdcsync-soak"):
            unregister(stack.connect_url, name)
    with psycopg.connect(stack.pg_dsn(), autocommit=True) as conn:
        drop_slot(conn, SLOT)
        conn.execute(f"DROP PUBLICATION IF EXISTS {SLOT}")
        conn.execute(f"DROP TABLE IF EXISTS public.{TABLE}")
    with contextlib.suppress(KafkaError):  # tidying only
        admin = kafka.admin("cdcsync-soak", request_timeout_ms=30000,
                            api_version_auto_timeout_ms=5000)  # fmt: skip
        with contextlib.closing(admin):
            ours = ("cdcsync.soak.", "cdcsync-soak-")
            doomed = [t for t in admin.list_topics() if t.startswith(ours)]
            if doomed:
                admin.delete_topics(doomed, timeout_ms=30000)
            groups = [g for g, *_ in admin.list_consumer_groups() if g.startswith(ours)]
            if groups:
                admin.delete_consumer_groups(groups)


def create(stack: StackSettings, kafka: BenchKafka, names: SoakNames, run_dir: Path) -> None:
    """A fresh table, the entity topic, and the connector streaming the table into it."""
    cleanup(stack, kafka)
    with psycopg.connect(stack.pg_dsn(), autocommit=True) as conn:
        conn.execute(contact_ddl(TABLE).encode())
    kafka.ensure_topics([TopicSpec(names.entity_topic, stack.partitions)])
    doc = json.loads(CONNECTOR_TEMPLATE.read_text())
    doc["name"] = names.connector
    route = doc["config"]["transforms.route.replacement"]
    doc["config"]["transforms.route.replacement"] = route.replace("RUN", names.run_id)
    path = run_dir / "connector.json"
    path.write_text(json.dumps(doc, indent=2))
    register(stack.connect_url, path, timeout=180)


def write_config(
    stack: StackSettings, kafka: BenchKafka, names: SoakNames, run_dir: Path, *, worker: int,
    web_port: int, api_url: str, poll_s: float,
) -> Path:  # fmt: skip
    """Worker ``worker``'s configuration: the soak's two-way contact entity (pushed on row
    changes, polled back into the table) on ``kafka``'s broker and security, its own web
    port and data dir; creates the config's topics."""
    data: dict[str, Any] = {
        "app": {"id": names.app_id, **kafka.app_settings(), "web_port": web_port,
                "datadir": str(run_dir / f"faust-w{worker}")},
        "topics": {"results": names.results, "dead_letters": names.dead_letters,
                   "conflicts": f"{names.prefix}.conflicts",
                   "notifications": f"{names.prefix}.notifications",
                   "audit": f"{names.prefix}.audit", "partitions": stack.partitions},
        "entities": {"contact": {
            "topic": names.entity_topic, "key": "id", "natural_key": ["email"],
            "mapping": MAPPING, "source": {"table": TABLE}, "poll": {"interval_s": poll_s},
            # Enough attempts to ride out the injected faults: about a quarter of attempts
            # fail, and bursts of 429s and kills make failures come in runs (a quick soak
            # saw one chain of 10 failed attempts). A dead letter for retries exhausted
            # counts against the soak.
            "retry": {"max_attempts": 20, "cap_s": 10},
            "policies": {"conflict": "source_wins", "source_delete": "delete",
                         "target_delete": "ignore", "unknown_target": "ignore"},
            "target": {"provider": "rest", "settings": {
                "base_url": api_url, "collection_path": "/api/v1/contacts",
                "object_type": "contact", "page_size": 500,
                "bulk_path": "/api/v1/contacts/_bulk"}},
        }},
    }  # fmt: skip
    path = run_dir / f"cdcsync-w{worker}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    kafka.ensure_topics(topic_specs(load_config(path)))
    return path
