"""The json-server example, end to end: random edits on both sides, then the convergence checks.

``python -m cdcsync.examples.jsonserver [SEED ...]`` prepares the stack (table,
topics, connector), installs and starts json-server 0.17.4 (npm; cached, left
running: ``python -m cdcsync.stack.apis down json-server`` stops it) and a
worker, runs each seed (200 random steps: rows inserted and updated in
PostgreSQL, objects edited through json-server's own API), waits until both
sides agree, prints each seed's figures and stops the worker.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from cdcsync.examples.convergence import SeedReport, exit_unless_converged, run_seeds
from cdcsync.examples.runner import Example, Say
from cdcsync.stack import apis

__all__ = ["ENTITY", "FOLDER", "MAPPING", "JsonServer", "main", "run", "start_server"]

FOLDER = Path(__file__).resolve().parent
ENTITY = "contact"
#: The entity's mapping in cdcsync.yaml: external field -> column.
MAPPING = {"firstName": "first_name", "lastName": "last_name", "email": "email", "phone": "phone"}


class JsonServer:
    """json-server's /contacts as a user drives it: filter by field, PATCH, list everything."""

    name = "json-server"

    def __init__(self, base_url: str, collection: str = "/contacts") -> None:
        self.collection = collection
        self.client = httpx.Client(base_url=base_url, timeout=10.0)

    def by_email(self, email: str) -> dict[str, Any] | None:
        found = self.client.get(self.collection, params={"email": email}).raise_for_status()
        items = found.json()
        return dict(items[0]) if items else None

    def edit(self, external_id: str, fields: Mapping[str, Any]) -> None:
        self.client.patch(f"{self.collection}/{external_id}", json=dict(fields)).raise_for_status()

    def objects(self, suffix: str) -> list[dict[str, Any]]:
        everything = self.client.get(self.collection).raise_for_status().json()
        return [o for o in everything if str(o.get("email", "")).endswith(suffix)]

    def write_count(self) -> int | None:
        return None  # json-server counts nothing: the audit topic does

    def close(self) -> None:
        self.client.close()


def start_server(ex: Example) -> apis.RunningApi:
    """json-server where the example's target points (installed and started if needed)."""
    base_url = str(ex.config.target(ENTITY).settings["base_url"])
    port = httpx.URL(base_url).port or 80
    return apis.json_server(ex.settings, port=port, collections=["contacts"], progress=ex.say)


def run(
    config_path: Path | None = None,
    *,
    seeds: Sequence[int] = (1,),
    steps: int = 200,
    say: Say = print,
) -> list[SeedReport]:
    """Run the seeds with one worker; each seed's report."""
    with Example(FOLDER, config_path=config_path, say=say) as ex:
        say("1/4 the example's table, topics and connector on the local stack")
        ex.prepare()
        say(f"2/4 json-server {apis.JSON_SERVER_VERSION} (npm)")
        api = start_server(ex)
        say("3/4 worker")
        ex.start_worker()
        side = JsonServer(api.url)
        reports = run_seeds(
            ex,
            side,
            table="js_contact",
            mapping=MAPPING,
            entity=ENTITY,
            seeds=seeds,
            steps=steps,
            say=say,
        )
        say("done; the worker stopped, json-server and the stack keep running")
    return reports


def main() -> None:
    """``python -m cdcsync.examples.jsonserver [SEED ...]``."""
    seeds = [int(s) for s in sys.argv[1:]] or [1]
    exit_unless_converged(run(seeds=seeds))
