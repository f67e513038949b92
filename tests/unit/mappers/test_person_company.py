"""The person-vs-company rule, both ways, alone and wrapping a declarative map."""

from __future__ import annotations

from typing import Any

import pytest

from cdcsync.errors import ConfigurationError, MappingError
from cdcsync.mappers import FieldMap, Mapper, PersonCompanyMapper

PC = PersonCompanyMapper()
PERSON = {"firstName": "Ada", "lastName": "Lovelace", "name": None}
COMPANY = {"firstName": None, "lastName": None, "name": "Acme"}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"first_name": "Ada", "last_name": "Lovelace", "company_name": None}, PERSON),
        ({"first_name": None, "last_name": None, "company_name": "Acme"}, COMPANY),
        # a company without a first name, even if a last name lingers
        ({"first_name": "", "last_name": "X", "company_name": "Acme"}, COMPANY),
        # a first name wins: a person who works somewhere
        ({"first_name": "Ada", "last_name": "Lovelace", "company_name": "Acme"}, PERSON),
        # neither: an (empty) person
        (
            {"first_name": None, "last_name": "Solo", "company_name": ""},
            {"firstName": None, "lastName": "Solo", "name": None},
        ),
    ],
)
def test_push(row: dict[str, Any], expected: dict[str, Any]) -> None:
    assert PC.to_external(row) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"firstName": "Ada", "lastName": "Lovelace", "name": "ignored"},
            {"first_name": "Ada", "last_name": "Lovelace", "company_name": None},
        ),
        (
            {"firstName": None, "lastName": None, "name": "Acme"},
            {"first_name": None, "last_name": None, "company_name": "Acme"},
        ),
        (
            {"name": "Acme"},
            {"first_name": None, "last_name": None, "company_name": "Acme"},
        ),
        (
            {"firstName": "", "lastName": "X", "name": "Acme"},
            {"first_name": None, "last_name": None, "company_name": "Acme"},
        ),
        (
            {"firstName": "Ada"},
            {"first_name": "Ada", "last_name": None, "company_name": None},
        ),
        # no name field at all: a partial update leaves the name columns alone
        ({"email": "a@x.org"}, {}),
    ],
)
def test_pull(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert PC.to_source(fields) == expected


@pytest.mark.parametrize("fields", [PERSON, COMPANY])
def test_round_trip(fields: dict[str, Any]) -> None:
    assert PC.to_external(PC.to_source(fields)) == fields


def test_missing_columns_are_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="company_name"):
        PC.to_external({"first_name": "Ada", "last_name": "L"})


def test_names_are_settings() -> None:
    pc = PersonCompanyMapper(
        first_name_column="given",
        last_name_column="family",
        company_column="org",
        first_name_field="given_name",
        last_name_field="family_name",
        name_field="display",
    )
    assert pc.to_external({"given": None, "family": None, "org": "Acme"}) == {
        "given_name": None,
        "family_name": None,
        "display": "Acme",
    }
    assert pc.to_source({"given_name": "Ada", "family_name": "L"}) == {
        "given": "Ada",
        "family": "L",
        "org": None,
    }
    assert pc.columns == {"given", "family", "org"}
    assert pc.fields == {"given_name", "family_name", "display"}


def test_wraps_a_declarative_map() -> None:
    inner = FieldMap({"email": "email", "tags": {"column": "tags", "mode": "append"}})
    pc = PersonCompanyMapper(inner)
    row = {
        "first_name": None,
        "last_name": None,
        "company_name": "Acme",
        "email": "hi@acme.example",
        "tags": ["b"],
    }
    assert pc.to_external(row, current={"tags": ["a"]}) == {
        "email": "hi@acme.example",
        "tags": ["a", "b"],
        **COMPANY,
    }
    pulled = pc.to_source({"firstName": "Ada", "lastName": "L", "email": "ada@x.org"})
    assert pulled == {
        "email": "ada@x.org",
        "first_name": "Ada",
        "last_name": "L",
        "company_name": None,
    }
    assert pc.columns == {"first_name", "last_name", "company_name", "email", "tags"}
    assert pc.pull_columns == pc.columns
    assert isinstance(pc, Mapper)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mapping": FieldMap({"name": "full_name"})}, "also maps"),
        ({"mapping": FieldMap({"x": "company_name"})}, "also maps"),
        ({"company_column": "first_name"}, "distinct"),
    ],
)
def test_rejects_clashes(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        PersonCompanyMapper(**kwargs)
