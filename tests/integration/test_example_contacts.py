"""The contacts example on the real stack: shapes, rowId pulls, the target_wins policy.

The example runs with its own table, connector and topics; the tests give it a
fresh consumer group and their own ports (reference API 8911, worker 6071;
8915/6075 for the end-to-end run of the runner), so they never share state
with ``python -m cdcsync.examples.contacts`` or each other.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdcsync.examples.contacts.run import FOLDER, Crm, insert_party, party_row, run, until
from cdcsync.examples.runner import EventLog, Example, edit_config

TOKEN_ENV = "CDCSYNC_EXAMPLE_CRM_TOKEN"


def _config(tmp: Path, *, api_port: int, web_port: int) -> Path:
    def edit(data: dict[str, Any]) -> None:
        data["app"].update(id=f"cdcsync-it-contacts-{uuid.uuid4().hex[:8]}", web_port=web_port)
        data["integrations"]["crm"]["settings"]["base_url"] = f"http://127.0.0.1:{api_port}"

    return edit_config(FOLDER / "cdcsync.yaml", tmp / "cdcsync.yaml", edit)


def test_the_runner_syncs_edits_and_settles_a_conflict(tmp_path: Path, running_stack: Any) -> None:
    """``python -m cdcsync.examples.contacts`` as a user runs it, on its own ports."""
    lines: list[str] = []
    report = run(_config(tmp_path, api_port=8915, web_port=6075), say=lines.append)
    output = "\n".join(lines)
    assert "6/6" in output and "done;" in output, output
    assert report.external["person0"]["lastName"] == "King"
    assert report.rows["person0"]["last_name"] == "King"
    assert report.rows["company0"]["phone"] == "+44 1908 999999"
    assert report.external["company1"]["name"] == "Bletchley Park Trust"


@pytest.fixture(scope="module")
def example(
    tmp_path_factory: pytest.TempPathFactory, running_stack: Any
) -> Iterator[tuple[Example, Crm]]:
    token = "it-crm-" + uuid.uuid4().hex
    path = _config(tmp_path_factory.mktemp("contacts"), api_port=8911, web_port=6071)
    with Example(FOLDER, config_path=path, say=lambda _line: None) as ex:
        ex.prepare()
        ex.serve_api(port=8911, token=token)
        ex.start_worker(
            env={TOKEN_ENV: token},
            log_path=ex.settings.logs_dir / "worker-it-example-contacts.log",
        )
        crm = Crm(ex.config, token)
        yield ex, crm
        crm.close()


@pytest.fixture
def watcher(example: tuple[Example, Crm]) -> Iterator[EventLog]:
    w = example[0].watch()
    yield w


def _result(watcher: EventLog, party_id: str, action: str) -> dict[str, Any]:
    found = watcher.wait(lambda e: e["entity_id"] == party_id and e.get("action") == action)
    assert found, f"no {action} result for party {party_id}"
    return found[0]


def _actions(watcher: EventLog, party_id: str, seconds: float) -> list[str]:
    """The actions of the events for ``party_id`` arriving over ``seconds``."""
    return [
        e.get("action", e["kind"]) for e in watcher.drain(seconds) if e["entity_id"] == party_id
    ]


def test_persons_and_companies_land_in_their_shape(example, watcher) -> None:
    ex, crm = example
    tag = uuid.uuid4().hex[:8]
    with ex.db() as db:
        person = insert_party(
            db, kind="person", first_name="Grace", last_name="Hopper",
            email=f"grace.{tag}@example.org", phone="+1 555 0101",
        )  # fmt: skip
        company = insert_party(
            db, kind="company", company_name="Remington Rand",
            email=f"office.{tag}@example.org", phone="+1 555 0102",
        )  # fmt: skip
        person_id = _result(watcher, person, "create")["external"]["id"]
        company_id = _result(watcher, company, "create")["external"]["id"]

        assert {k: v for k, v in crm.get(person_id).items() if k not in ("id", "rowId")} == {
            "type": "Person", "emailAddress": f"grace.{tag}@example.org",
            "phoneNumber": "+1 555 0101", "firstName": "Grace", "lastName": "Hopper", "name": None,
        }  # fmt: skip
        assert {k: v for k, v in crm.get(company_id).items() if k not in ("id", "rowId")} == {
            "type": "Organisation", "emailAddress": f"office.{tag}@example.org",
            "phoneNumber": "+1 555 0102", "firstName": None, "lastName": None,
            "name": "Remington Rand",
        }  # fmt: skip

        # An internal column is not mapped: its change costs no API call.
        before = crm.get(company_id)["rowId"]
        db.execute("UPDATE party SET notes = 'key account' WHERE id = %s", (company,))
        skipped = _result(watcher, company, "skip")
        assert skipped["api_calls"] == 0
        assert crm.get(company_id)["rowId"] == before


def test_an_external_edit_comes_back_by_row_id(example, watcher) -> None:
    ex, crm = example
    tag = uuid.uuid4().hex[:8]
    with ex.db() as db:
        company = insert_party(
            db, kind="company", company_name="Zuse KG", email=f"zuse.{tag}@example.org"
        )
        person = insert_party(
            db, kind="person", first_name="Konrad", last_name="Zuse",
            email=f"konrad.{tag}@example.org",
        )  # fmt: skip
        company_id = _result(watcher, company, "create")["external"]["id"]
        person_id = _result(watcher, person, "create")["external"]["id"]

        edited = crm.edit(company_id, name="Zuse KG Neukirchen", phoneNumber="+49 6694 0")
        pulled = _result(watcher, company, "pull")
        assert pulled["origin"] == "external"
        assert pulled["external"]["row_id"] == edited["rowId"]
        row = party_row(db, company)
        assert row is not None
        assert (row["kind"], row["company_name"], row["first_name"], row["phone"]) == (
            "company", "Zuse KG Neukirchen", None, "+49 6694 0",
        )  # fmt: skip

        # The CRM turns the person into an organisation: the mapper rewrites the name columns.
        crm.edit(person_id, type="Organisation", firstName=None, lastName=None, name="Zuse Labs")
        _result(watcher, person, "pull")
        row = party_row(db, person)
        assert row is not None
        assert (row["kind"], row["first_name"], row["last_name"], row["company_name"]) == (
            "company", None, None, "Zuse Labs",
        )  # fmt: skip

        # The write-backs come round through Debezium and are skipped: no loop.
        assert set(_actions(watcher, company, 4)) <= {"skip"}
        assert crm.get(company_id)["rowId"] == edited["rowId"]


def test_both_sides_changed_the_crm_wins(example, watcher) -> None:
    ex, crm = example
    tag = uuid.uuid4().hex[:8]
    with ex.db() as db:
        person = insert_party(
            db, kind="person", first_name="Ada", last_name="Lovelace",
            email=f"ada.{tag}@example.org", phone="1",
        )  # fmt: skip
        person_id = _result(watcher, person, "create")["external"]["id"]

        # The CRM is edited, then the row, before the poll brings the CRM's edit back.
        crm.edit(person_id, lastName="King", phoneNumber="2")
        db.execute("UPDATE party SET last_name = 'Byron', phone = '3' WHERE id = %s", (person,))

        def converged() -> bool:
            row, obj = party_row(db, person), crm.get(person_id)
            return (
                row is not None
                and (row["last_name"], row["phone"]) == ("King", "2")
                and (obj["lastName"], obj["phoneNumber"]) == ("King", "2")
            )

        assert until(converged, timeout_s=45), (party_row(db, person), crm.get(person_id))
        actions = _actions(watcher, person, 3)
        assert "pull" in actions, actions
        # It stays settled: nothing pushes 'Byron' back later.
        time.sleep(1)
        assert set(_actions(watcher, person, 4)) <= {"skip"}
        assert converged()


def test_a_party_created_in_the_crm_becomes_a_row(example, watcher) -> None:
    ex, crm = example
    email = f"made-in-crm.{uuid.uuid4().hex[:8]}@example.org"
    made = crm.create(type="Organisation", name="Outside GmbH", emailAddress=email)
    with ex.db() as db:

        def row() -> Any:
            return db.execute(
                "SELECT id, kind, company_name, first_name FROM party WHERE email = %s", (email,)
            ).fetchone()

        assert until(lambda: row() is not None, timeout_s=30)
        party_id, kind, name, first = row()
        assert (kind, name, first) == ("company", "Outside GmbH", None)
        adopted = _result(watcher, str(party_id), "update")
        assert adopted["external"]["id"] == made["id"]
    assert [o["id"] for o in crm.all() if o.get("emailAddress") == email] == [made["id"]]
