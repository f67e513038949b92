"""FieldMap in both directions: write modes, value maps, direction filtering, round trips."""

from __future__ import annotations

from typing import Any

import pytest

from cdcsync.errors import MappingError
from cdcsync.mappers import FieldMap, Mapper, payload_hash

# -- write modes, push ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "value", "current", "expected"),
    [
        # overwrite always writes
        ("overwrite", "new", None, {"f": "new"}),
        ("overwrite", "new", {"f": "old"}, {"f": "new"}),
        ("overwrite", None, {"f": "old"}, {"f": None}),
        # if_new only when creating
        ("if_new", "new", None, {"f": "new"}),
        ("if_new", "new", {"f": "old"}, {}),
        ("if_new", "new", {}, {}),
        # if_empty only over None, "", [] or an absent field
        ("if_empty", "new", None, {"f": "new"}),
        ("if_empty", "new", {"f": None}, {"f": "new"}),
        ("if_empty", "new", {"f": ""}, {"f": "new"}),
        ("if_empty", "new", {"f": []}, {"f": "new"}),
        ("if_empty", "new", {}, {"f": "new"}),
        ("if_empty", "new", {"f": "old"}, {}),
        ("if_empty", "new", {"f": 0}, {}),
        ("if_empty", "new", {"f": False}, {}),
        # append: union, order kept, no duplicates
        ("append", ["a", "b"], None, {"f": ["a", "b"]}),
        ("append", ["a", "b", "a"], None, {"f": ["a", "b"]}),
        ("append", ["b", "c"], {"f": ["a", "b"]}, {"f": ["a", "b", "c"]}),
        ("append", ["a"], {"f": ["a", "b"]}, {"f": ["a", "b"]}),
        ("append", [], {"f": ["a"]}, {"f": ["a"]}),
        ("append", None, {"f": ["a"]}, {"f": ["a"]}),
        ("append", None, None, {"f": []}),
        ("append", ["x"], {"f": None}, {"f": ["x"]}),
        ("append", ["x"], {}, {"f": ["x"]}),
        ("append", [1, 2], {"f": [2, 3]}, {"f": [2, 3, 1]}),
    ],
)
def test_push_write_modes(
    mode: str, value: Any, current: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    fm = FieldMap({"f": {"column": "c", "mode": mode}})
    assert fm.to_external({"c": value}, current=current) == expected


# -- write modes, pull ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "value", "current", "expected"),
    [
        ("overwrite", "new", None, {"c": "new"}),
        ("overwrite", "new", {"c": "old"}, {"c": "new"}),
        ("if_new", "new", None, {"c": "new"}),
        ("if_new", "new", {"c": None}, {}),
        ("if_empty", "new", {"c": None}, {"c": "new"}),
        ("if_empty", "new", {"c": ""}, {"c": "new"}),
        ("if_empty", "new", {"c": []}, {"c": "new"}),
        ("if_empty", "new", {"c": "old"}, {}),
        ("if_empty", "new", None, {"c": "new"}),
        ("append", ["b", "c"], {"c": ["a", "b"]}, {"c": ["a", "b", "c"]}),
        ("append", ["a", "a"], None, {"c": ["a"]}),
        ("append", ["a"], {"c": None}, {"c": ["a"]}),
    ],
)
def test_pull_write_modes(
    mode: str, value: Any, current: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    fm = FieldMap({"f": {"column": "c", "mode": mode}})
    assert fm.to_source({"f": value}, current=current) == expected


@pytest.mark.parametrize(
    ("direction", "kwargs"),
    [
        ("push", {"row": {"c": "not a list"}}),
        ("push", {"row": {"c": ["x"]}, "current": {"f": "scalar"}}),
        ("pull", {"fields": {"f": "not a list"}}),
        ("pull", {"fields": {"f": ["x"]}, "current": {"c": 3}}),
    ],
)
def test_append_needs_lists(direction: str, kwargs: dict[str, Any]) -> None:
    fm = FieldMap({"f": {"column": "c", "mode": "append"}})
    call = fm.to_external if direction == "push" else fm.to_source
    with pytest.raises(MappingError, match="append"):
        call(**kwargs)


# -- value maps ----------------------------------------------------------------------

STATUS = FieldMap({"status": {"column": "state", "value_map": {"active": "A", "closed": "C"}}})


@pytest.mark.parametrize(
    ("source", "external"),
    [("active", "A"), ("closed", "C"), (None, None)],
)
def test_value_map_both_ways(source: Any, external: Any) -> None:
    assert STATUS.to_external({"state": source}) == {"status": external}
    assert STATUS.to_source({"status": external}) == {"state": source}


def test_value_map_missing_value_names_value_and_field() -> None:
    with pytest.raises(MappingError, match=r"field 'status'.*'pending'.*value_map"):
        STATUS.to_external({"state": "pending"})
    with pytest.raises(MappingError, match=r"field 'status'.*'P'.*reverse_default"):
        STATUS.to_source({"status": "P"})


def test_value_map_unhashable_external_value_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="not in its value_map"):
        STATUS.to_source({"status": {"nested": 1}})


@pytest.mark.parametrize(
    ("spec", "row", "fields", "external", "source"),
    [
        # value_map_default covers unknown source values on push
        (
            {"value_map": {"active": "A"}, "value_map_default": "X"},
            {"c": "pending"},
            {"f": "A"},
            {"f": "X"},
            {"c": "active"},
        ),
        # None is a valid default and is honoured
        (
            {"value_map": {"active": "A"}, "value_map_default": None},
            {"c": "pending"},
            {"f": "A"},
            {"f": None},
            {"c": "active"},
        ),
        # reverse_default covers unknown external values on pull
        (
            {"value_map": {"active": "A"}, "reverse_default": "unknown"},
            {"c": "active"},
            {"f": "Z"},
            {"f": "A"},
            {"c": "unknown"},
        ),
        # a mapped NULL
        (
            {"value_map": {None: "none", "x": "X"}},
            {"c": None},
            {"f": "none"},
            {"f": "none"},
            {"c": None},
        ),
        # non-string keys and values, as YAML reads them
        (
            {"value_map": {1: True, 2: False}},
            {"c": 2},
            {"f": True},
            {"f": False},
            {"c": 1},
        ),
        # lists are mapped item by item
        (
            {"value_map": {"r": "red", "g": "green"}},
            {"c": ["r", "g"]},
            {"f": ["green"]},
            {"f": ["red", "green"]},
            {"c": ["g"]},
        ),
    ],
)
def test_value_map_table(
    spec: dict[str, Any],
    row: dict[str, Any],
    fields: dict[str, Any],
    external: dict[str, Any],
    source: dict[str, Any],
) -> None:
    fm = FieldMap({"f": {"column": "c", **spec}})
    assert fm.to_external(row) == external
    assert fm.to_source(fields) == source


# -- direction filtering -------------------------------------------------------------

DIRECTIONS = FieldMap(
    {
        "both": "c_both",
        "pushOnly": {"column": "c_push", "direction": "push"},
        "pullOnly": {"column": "c_pull", "direction": "pull"},
    }
)


def test_push_skips_pull_only_fields_and_does_not_need_their_columns() -> None:
    row = {"c_both": 1, "c_push": 2}
    assert DIRECTIONS.to_external(row) == {"both": 1, "pushOnly": 2}


def test_pull_skips_push_only_fields() -> None:
    fields = {"both": 1, "pushOnly": 2, "pullOnly": 3}
    assert DIRECTIONS.to_source(fields) == {"c_both": 1, "c_pull": 3}


def test_pull_skips_missing_fields_and_ignores_unmapped_ones() -> None:
    assert DIRECTIONS.to_source({"pullOnly": 3, "other": 9}) == {"c_pull": 3}
    assert DIRECTIONS.to_source({}) == {}


def test_column_and_field_sets_follow_directions() -> None:
    assert DIRECTIONS.columns == {"c_both", "c_push"}
    assert set(DIRECTIONS.fields) == {"both", "pushOnly"}
    assert DIRECTIONS.pull_columns == {"c_both", "c_pull"}
    assert isinstance(DIRECTIONS, Mapper)


def test_one_column_may_be_pushed_to_two_fields() -> None:
    fm = FieldMap({"name": "n", "displayName": {"column": "n", "direction": "push"}})
    assert fm.to_external({"n": "Ada"}) == {"name": "Ada", "displayName": "Ada"}
    assert fm.to_source({"name": "Bo", "displayName": "X"}) == {"n": "Bo"}


def test_push_value_must_be_json() -> None:
    with pytest.raises(MappingError, match="JSON scalar"):
        FieldMap({"f": "c"}).to_external({"c": [{"a": 1}]})


def test_canonical_payload_is_deterministic() -> None:
    fm = FieldMap({"b": "b", "a": {"column": "a", "mode": "append"}})
    row = {"a": ["x", "y", "x"], "b": 1}
    first = fm.to_external(row)
    assert first == fm.to_external(dict(reversed(row.items())))
    assert payload_hash(first) == payload_hash(fm.to_external(row))


# -- round trip ----------------------------------------------------------------------

ROUND_TRIP = FieldMap(
    {
        "email": "email",
        "status": {"column": "state", "value_map": {"active": "A", "closed": "C", None: "-"}},
        "level": {"column": "lvl", "value_map": {1: "low", 2: "high"}},
        "tags": "tags",
        "vip": "is_vip",
    }
)


@pytest.mark.parametrize(
    "fields",
    [
        {"email": "a@x.org", "status": "A", "level": "low", "tags": ["a"], "vip": True},
        {"email": "", "status": "C", "level": "high", "tags": [], "vip": False},
        {"email": None, "status": "-", "level": None, "tags": None, "vip": None},
        {"email": "ünï@x.org", "status": "A", "level": "high", "tags": ["b", "a"], "vip": 0},
    ],
)
def test_round_trip_external_source_external(fields: dict[str, Any]) -> None:
    row = {"id": 7, "unmapped": "x", **ROUND_TRIP.to_source(fields)}
    assert ROUND_TRIP.to_external(row) == fields


@pytest.mark.parametrize(
    "row",
    [
        {"email": "a@x.org", "state": "active", "lvl": 1, "tags": ["t"], "is_vip": True},
        {"email": "b@x.org", "state": None, "lvl": 2, "tags": [], "is_vip": False},
    ],
)
def test_round_trip_source_external_source(row: dict[str, Any]) -> None:
    assert ROUND_TRIP.to_source(ROUND_TRIP.to_external(row)) == row
