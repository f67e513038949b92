"""The Directus example, end to end: random edits on both sides, then the convergence checks.

``python -m cdcsync.examples.directus [SEED ...]`` prepares the stack (table,
topics, connector), installs and starts Directus 12.4.0 (npm, ~6 minutes the
first time, cached; it runs on the stack's PostgreSQL in its own database and is
left running: ``python -m cdcsync.stack.apis down directus`` stops it), creates
the ``contacts`` collection (``collection.json``), starts a worker with the
admin's static token, runs each seed (200 random steps: rows inserted and
updated in PostgreSQL, items edited through Directus's own API), waits until
both sides agree, prints each seed's figures and stops the worker.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from cdcsync.examples.convergence import SeedReport, exit_unless_converged, run_seeds
from cdcsync.examples.runner import Example, Say
from cdcsync.stack import apis

__all__ = [
    "CONNECTOR",
    "ENTITY",
    "FOLDER",
    "MAPPING",
    "TOKEN_ENV",
    "Directus",
    "main",
    "run",
    "start_server",
]

FOLDER = Path(__file__).resolve().parent
#: Beside collection.json, so named (the runner would look for the only *.json).
CONNECTOR = FOLDER / "cdcsync-example-directus.json"
ENTITY = "contact"
TOKEN_ENV = "CDCSYNC_EXAMPLE_DIRECTUS_TOKEN"
#: The entity's mapping in cdcsync.yaml: external field -> column.
MAPPING = {
    "given_name": "first_name",
    "family_name": "last_name",
    "email": "email",
    "phone_number": "phone",
}


class Directus:
    """Directus's ``contacts`` collection as a user drives it, and its activity log."""

    name = "directus"

    def __init__(self, api: apis.RunningApi, collection: str = "contacts") -> None:
        self.collection = collection
        self.client = httpx.Client(
            base_url=api.url, headers={"Authorization": f"Bearer {api.token}"}, timeout=30.0
        )

    def by_email(self, email: str) -> dict[str, Any] | None:
        params = {"filter[email][_eq]": email, "limit": "1"}
        found = self.client.get(f"/items/{self.collection}", params=params).raise_for_status()
        items = found.json()["data"]
        return dict(items[0]) if items else None

    def edit(self, external_id: str, fields: Mapping[str, Any]) -> None:
        path = f"/items/{self.collection}/{external_id}"
        self.client.patch(path, json=dict(fields)).raise_for_status()

    def objects(self, suffix: str) -> list[dict[str, Any]]:
        params = {"filter[email][_ends_with]": suffix, "limit": "-1"}
        found = self.client.get(f"/items/{self.collection}", params=params).raise_for_status()
        return [dict(o) for o in found.json()["data"]]

    def write_count(self) -> int | None:
        """Creates, updates and deletes of the collection in Directus's own activity log."""
        params = {
            "filter[collection][_eq]": self.collection,
            "filter[action][_in]": "create,update,delete",
            "aggregate[count]": "*",
        }
        found = self.client.get("/activity", params=params).raise_for_status()
        return int(found.json()["data"][0]["count"])

    def clear(self) -> None:
        """Delete every item of the collection (a test's fresh start)."""
        self.client.request(
            "DELETE", f"/items/{self.collection}", json={"query": {"limit": -1}}
        ).raise_for_status()

    def close(self) -> None:
        self.client.close()


def start_server(ex: Example) -> apis.RunningApi:
    """Directus where the example's target points, with the example's collection."""
    base_url = str(ex.config.target(ENTITY).settings["base_url"])
    port = httpx.URL(base_url).port or 80
    api = apis.directus(ex.settings, port=port, progress=ex.say)
    spec = json.loads((FOLDER / "collection.json").read_text())
    if apis.directus_collection(api, spec):
        ex.say(f"  directus: collection {spec['collection']} created")
    return api


def run(
    config_path: Path | None = None,
    *,
    seeds: Sequence[int] = (1,),
    steps: int = 200,
    say: Say = print,
) -> list[SeedReport]:
    """Run the seeds with one worker; each seed's report."""
    with Example(FOLDER, config_path=config_path, connector_path=CONNECTOR, say=say) as ex:
        say("1/4 the example's table, topics and connector on the local stack")
        ex.prepare()
        say(f"2/4 Directus {apis.DIRECTUS_VERSION} (npm) on the stack's PostgreSQL")
        api = start_server(ex)
        assert api.token is not None
        say("3/4 worker")
        ex.start_worker(env={TOKEN_ENV: api.token})
        side = Directus(api)
        reports = run_seeds(
            ex,
            side,
            table="dx_contact",
            mapping=MAPPING,
            entity=ENTITY,
            seeds=seeds,
            steps=steps,
            say=say,
        )
        say("done; the worker stopped, Directus and the stack keep running")
    return reports


def main() -> None:
    """``python -m cdcsync.examples.directus [SEED ...]``."""
    seeds = [int(s) for s in sys.argv[1:]] or [1]
    exit_unless_converged(run(seeds=seeds))
