"""Reconcile's comparison: every category, pairing by state then natural key, write modes."""

from __future__ import annotations

import json
from typing import Any

from cdcsync.mappers.fieldmap import FieldMap
from cdcsync.operators.reconcile import (
    Difference,
    Drift,
    MissingExternal,
    MissingSource,
    Report,
    Unmappable,
    compare,
)
from cdcsync.sinks.base import ExternalRecord
from cdcsync.streams.commands.reconcile import MISSING_SOURCE_NOTE, report_lines

MAPPER = FieldMap({"firstName": "first_name", "email": "email"})


def row(entity_id: int, first: str, email: str | None = None) -> dict[str, Any]:
    return {"id": entity_id, "first_name": first, "email": email or f"{first.lower()}@x.org"}


def rec(ext_id: str, first: str, email: str | None = None, **more: Any) -> ExternalRecord:
    fields = {"firstName": first, "email": email or f"{first.lower()}@x.org", **more}
    return ExternalRecord(id=ext_id, row_id="1", fields=fields)


def test_equal_sides_report_nothing_but_the_count():
    rows = {"1": row(1, "Ada"), "2": row(2, "Bob")}
    records = [rec("a", "Ada", lastName="unmapped fields are not compared"), rec("b", "Bob")]
    report = compare(rows, records, {"1": "a", "2": "b"}, MAPPER, ["email"])
    assert report.clean and report.equal == 2
    assert (report.rows, report.records) == (2, 2)
    assert report.repairable() == []


def test_every_category():
    rows = {
        "1": row(1, "Ada"),  # equal
        "2": row(2, "Bob"),  # its linked object was deleted
        "3": row(3, "Cy"),  # a field was edited externally
        "4": row(4, "Dee"),  # never synced, nothing to adopt
    }
    records = [
        rec("a", "Ada"),
        rec("c", "Cyril", "cy@x.org"),
        rec("x", "Stray"),  # no row claims it
        rec("z", "Old"),  # linked to a row that is gone
    ]
    links = {"1": "a", "2": "b", "3": "c", "9": "z"}
    report = compare(rows, records, links, MAPPER, ["email"])

    assert report.missing_external == [MissingExternal("2", "b"), MissingExternal("4", None)]
    assert report.differs == [Drift("3", "c", (Difference("firstName", "Cy", "Cyril"),))]
    assert report.missing_source == [MissingSource("x", None), MissingSource("z", "9")]
    assert report.equal == 1 and not report.clean
    assert report.repairable() == ["2", "3", "4"] and report.unmappable == []


def test_an_unlinked_row_pairs_by_natural_key_only_with_unclaimed_objects():
    rows = {"1": row(1, "Ada"), "2": row(2, "Ada2", "ada@x.org"), "3": row(3, "Bo")}
    records = [rec("a", "Ada"), rec("b", "Bob", "bo@x.org")]
    # row 1 owns "a" through the state; row 2 shares its email but must not take it
    report = compare(rows, records, {"1": "a"}, MAPPER, ["email"])
    assert report.missing_external == [MissingExternal("2", None)]
    assert report.differs == [
        Drift("3", "b", (Difference("firstName", "Bo", "Bob"),), linked_by="natural_key")
    ]
    assert report.missing_source == [] and report.equal == 1


def test_an_object_linked_to_another_row_is_never_adopted_by_natural_key():
    rows = {"2": row(2, "Ada")}
    report = compare(rows, [rec("a", "Ada")], {"1": "a"}, MAPPER, ["email"])
    assert report.missing_external == [MissingExternal("2", None)]
    assert report.missing_source == [MissingSource("a", "1")]


def test_without_a_natural_key_unlinked_rows_are_missing():
    report = compare({"1": row(1, "Ada")}, [rec("a", "Ada")], {}, MAPPER, [])
    assert report.missing_external == [MissingExternal("1", None)]
    assert report.missing_source == [MissingSource("a", None)]


def test_an_empty_natural_key_matches_nothing():
    rows = {"1": {"id": 1, "first_name": "Ada", "email": None}}
    records = [ExternalRecord("a", None, {"firstName": "Ada", "email": None})]
    report = compare(rows, records, {}, MAPPER, ["email"])
    assert report.missing_external == [MissingExternal("1", None)]


def test_unmappable_rows_are_reported_not_compared():
    rows = {"1": {"id": 1, "first_name": "Ada"}, "2": {"id": 2, "first_name": "Bo"}}
    records = [rec("a", "Ada")]
    report = compare(rows, records, {"1": "a"}, MAPPER, ["email"])
    assert [u.entity_id for u in report.unmappable] == ["1", "2"]
    assert all(isinstance(u, Unmappable) and "email" in u.error for u in report.unmappable)
    assert report.missing_external == [] and report.differs == [] and report.equal == 0


def test_write_modes_compare_as_the_agent_writes():
    mapper = FieldMap(
        {
            "email": "email",
            "source": {"column": "origin", "mode": "if_new"},
            "tags": {"column": "tags", "mode": "append"},
        }
    )
    rows = {"1": {"id": 1, "email": "a@x.org", "origin": "crm", "tags": ["x"]}}
    kept = ExternalRecord("a", None, {"email": "a@x.org", "source": "web", "tags": ["y", "x"]})
    assert compare(rows, [kept], {"1": "a"}, mapper, ["email"]).equal == 1
    lost = ExternalRecord("a", None, {"email": "a@x.org", "source": "web", "tags": ["y"]})
    (drift,) = compare(rows, [lost], {"1": "a"}, mapper, ["email"]).differs
    assert drift.fields == (Difference("tags", ["y", "x"], ["y"]),)


def test_ids_sort_numerically():
    rows = {str(i): row(i, f"N{i}") for i in (10, 9, 100)}
    report = compare(rows, [], {}, MAPPER, ["email"])
    assert [m.entity_id for m in report.missing_external] == ["9", "10", "100"]


def test_the_json_report_is_complete_and_serialisable():
    report = Report(
        missing_external=[MissingExternal("2", None)],
        differs=[Drift("3", "c", (Difference("firstName", "Cy", "Cyril"),))],
        equal=4,
        rows=6,
        records=5,
    )
    data = json.loads(json.dumps(report.to_json()))
    assert data["counts"] == {
        "missing_external": 1,
        "missing_source": 0,
        "differs": 1,
        "unmappable": 0,
        "equal": 4,
    }
    assert data["differs"][0]["fields"] == [
        {"field": "firstName", "source": "Cy", "external": "Cyril"}
    ]


def test_the_text_report_limits_each_category_and_explains_missing_source():
    report = Report(
        missing_external=[MissingExternal(str(i), None) for i in range(5)],
        missing_source=[MissingSource("x", "9")],
        equal=1,
    )
    text = "\n".join(report_lines("contact", report, limit=2))
    assert "missing_external (5):" in text and "... 3 more" in text
    assert "x  (was linked to row 9)" in text and MISSING_SOURCE_NOTE in text
    everything = "\n".join(report_lines("contact", report, limit=0))
    assert "more" not in everything.replace(MISSING_SOURCE_NOTE, "")
