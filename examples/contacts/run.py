"""The contacts example, end to end: persons and companies to the CRM, its edits back.

``python -m cdcsync.examples.contacts`` prepares the stack (table, topics,
connector), starts the reference API as the CRM and a worker, then inserts two
persons and two companies, edits one company in the CRM (pulled back by its
``rowId``), changes one person on both sides (the ``target_wins`` policy keeps
the CRM's edit), prints what happened and stops the worker and the API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from cdcsync.examples.runner import EventLog, Example, Say
from cdcsync.schemas.config import Config

__all__ = ["FOLDER", "Crm", "Report", "insert_party", "main", "party_row", "run", "until"]

FOLDER = Path(__file__).resolve().parent
ENTITY = "party"


@dataclass
class Report:
    """What one run did: the rows it made, and what the CRM and the table hold at the end."""

    ids: dict[str, str] = field(default_factory=dict)  # label -> party id
    external: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> CRM object
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> party row
    events: list[dict[str, Any]] = field(default_factory=list)


class Crm:
    """The CRM's side as a user sees it: read, edit and list parties over its API."""

    def __init__(self, config: Config, token: str) -> None:
        target = config.target(ENTITY).settings
        self.collection = str(target["collection_path"])
        self.client = httpx.Client(
            base_url=str(target["base_url"]), headers={"Authorization": f"Bearer {token}"}
        )

    def get(self, external_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"{self.collection}/{external_id}").raise_for_status().json())

    def edit(self, external_id: str, **fields: Any) -> dict[str, Any]:
        """A user edits the object in the CRM: a new ``rowId``."""
        body = {k: v for k, v in self.get(external_id).items() if k not in ("id", "rowId")}
        response = self.client.put(f"{self.collection}/{external_id}", json=body | fields)
        return dict(response.raise_for_status().json())

    def create(self, **fields: Any) -> dict[str, Any]:
        return dict(self.client.post(self.collection, json=fields).raise_for_status().json())

    def all(self) -> list[dict[str, Any]]:
        page = self.client.get(self.collection, params={"limit": 1000}).raise_for_status().json()
        return list(page["items"])

    def close(self) -> None:
        self.client.close()


def insert_party(conn: psycopg.Connection[Any], **columns: Any) -> str:
    """Insert one party row; its id."""
    names = list(columns)
    row = conn.execute(
        f"INSERT INTO party ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))}) "
        "RETURNING id",
        [columns[n] for n in names],
    ).fetchone()
    assert row is not None
    return str(row[0])


def party_row(conn: psycopg.Connection[Any], party_id: str) -> dict[str, Any] | None:
    """The row as a dict, or ``None`` when it is gone."""
    cur = conn.execute(
        "SELECT kind, first_name, last_name, company_name, email, phone, notes "
        "FROM party WHERE id = %s",
        (party_id,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d.name for d in cur.description or ()], row, strict=True))


def until(check: Callable[[], bool], *, timeout_s: float = 30.0) -> bool:
    """Poll ``check`` until it holds or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return check()


def _show(say: Say) -> Callable[[str, dict[str, Any]], None]:
    def show(_topic: str, e: dict[str, Any]) -> None:
        ext = e.get("external") or {}
        say(
            f"    {e['kind']:<11} party {e['entity_id']:>5} {e.get('action', '-'):<6} "
            f"{e.get('reason', '')}  {ext.get('link') or ''}"
        )

    return show


def run(config_path: Path | None = None, *, say: Say = print, token: str | None = None) -> Report:
    """Run the example once; raise ``SystemExit`` if something did not happen."""
    with Example(FOLDER, config_path=config_path, say=say) as ex:
        config = ex.config
        say("1/6 the example's table, topics and connector on the local stack")
        ex.prepare()
        say("2/6 the CRM (reference API)")
        env = ex.serve_target(ENTITY, token)
        (token,) = env.values()
        say("3/6 worker")
        ex.start_worker(env=env)
        watcher = ex.watch()
        crm = Crm(config, token)
        report = Report()
        try:
            _scenario(ex, watcher, crm, report, say)
        finally:
            crm.close()
        say("done; the worker and the CRM stopped, the stack keeps running")
    return report


def _scenario(ex: Example, watcher: EventLog, crm: Crm, report: Report, say: Say) -> None:
    """Steps 4 to 6, then what both sides hold; ``SystemExit`` when a step's outcome is missing."""
    links = _insert_parties(ex, watcher, crm, report, say)
    _edit_in_crm(ex, watcher, crm, report, say, links)
    _change_both_sides(ex, watcher, crm, report, say, links)
    with ex.db() as conn:
        for label, party_id in report.ids.items():
            report.rows[label] = party_row(conn, party_id) or {}
            report.external[label] = crm.get(links[party_id])
    say("\nthe CRM now holds:")
    for label in report.ids:
        o = report.external[label]
        who = o.get("name") or f"{o.get('firstName')} {o.get('lastName')}"
        say(f"  {o['id']}  rowId={o['rowId']}  {o['type']:<12} {who:<24} {o['phoneNumber']}")


def _insert_parties(
    ex: Example, watcher: EventLog, crm: Crm, report: Report, say: Say
) -> dict[str, str]:
    """Step 4: two persons and two companies inserted, each created in the CRM; party id ->
    CRM id.
    """
    tag = uuid.uuid4().hex[:8]
    say("4/6 two persons and two companies inserted into public.party")
    with ex.db() as conn:
        people = [("Ada", "Lovelace"), ("Alan", "Turing")]
        for i, (first, last) in enumerate(people):
            report.ids[f"person{i}"] = insert_party(
                conn, kind="person", first_name=first, last_name=last,
                email=f"{first.lower()}.{tag}@example.org", phone=f"+44 20 7946 {i:04d}",
            )  # fmt: skip
        for i, name in enumerate(["Analytical Engines Ltd", "Bletchley Park Trust"]):
            report.ids[f"company{i}"] = insert_party(
                conn, kind="company", company_name=name,
                email=f"office{i}.{tag}@example.org", phone=f"+44 1908 {i:06d}",
            )  # fmt: skip
    ids = set(report.ids.values())
    created = watcher.wait(
        lambda e: e["entity_id"] in ids and e.get("action") == "create",
        len(ids),
        on_event=_show(say),
    )
    report.events += created
    links = {e["entity_id"]: e["external"]["id"] for e in created if e.get("external")}
    if len(links) < len(ids):
        raise SystemExit(f"only {len(links)} of {len(ids)} parties reached the CRM; see the log")
    for party_id in report.ids.values():
        obj = crm.get(links[party_id])
        shape = (
            f"name={obj['name']!r}" if obj.get("name")
            else f"firstName={obj['firstName']!r} lastName={obj['lastName']!r}"
        )  # fmt: skip
        say(f"    CRM {obj['id']} ({obj['type']}): {shape}  rowId={obj['rowId']}")
    return links


def _edit_in_crm(
    ex: Example, watcher: EventLog, crm: Crm, report: Report, say: Say, links: dict[str, str]
) -> None:
    """Step 5: a company's phone edited in the CRM comes back into its row (a pull)."""
    say("5/6 a company's phone edited in the CRM; the poll sees its new rowId")
    company = report.ids["company0"]
    edited = crm.edit(links[company], phoneNumber="+44 1908 999999")
    say(f"    CRM {edited['id']} now at rowId={edited['rowId']}")
    pulled = watcher.wait(
        lambda e: e["entity_id"] == company and e.get("action") == "pull", on_event=_show(say)
    )
    report.events += pulled
    with ex.db() as conn:
        row = party_row(conn, company)
    say(f"    public.party {company}: phone = {row and row['phone']!r}")
    if not pulled or row is None or row["phone"] != "+44 1908 999999":
        raise SystemExit("the CRM's edit did not come back; see the worker log")


def _change_both_sides(
    ex: Example, watcher: EventLog, crm: Crm, report: Report, say: Say, links: dict[str, str]
) -> None:
    """Step 6: a person changed on both sides at once; ``target_wins`` settles on the CRM's."""
    say("6/6 a person changed on both sides at once; policy target_wins: the CRM's edit wins")
    person = report.ids["person0"]
    crm.edit(links[person], lastName="King")
    with ex.db() as conn:
        conn.execute("UPDATE party SET last_name = 'Byron' WHERE id = %s", (person,))

        def converged() -> bool:
            row = party_row(conn, person)
            return crm.get(links[person])["lastName"] == "King" and bool(
                row and row["last_name"] == "King"
            )

        ok = until(converged, timeout_s=45)
    settled = [e for e in watcher.drain(3) if e["entity_id"] == person]
    for event in settled:
        _show(say)("", event)
    report.events += settled
    say(f"    both sides hold lastName {'King' if ok else '(not converged)'}")
    if not ok:
        raise SystemExit("the conflict did not settle on the CRM's edit; see the worker log")


def main() -> None:
    """``python -m cdcsync.examples.contacts``."""
    run()
