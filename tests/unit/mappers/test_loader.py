"""build_mapper: config -> Mapper, and every configuration mistake as a clear error."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from cdcsync.errors import ConfigurationError
from cdcsync.mappers import FieldMap, Mapper, PersonCompanyMapper, build_mapper

PC_PATH = "cdcsync.mappers.person_company:PersonCompanyMapper"


class NotAMapper:
    def to_external(self, row: Any) -> dict[str, Any]:
        return {}


class AlmostAMapper:
    """Has the methods, lacks the column/field sets."""

    def to_external(self, row: Any, *, current: Any = None) -> dict[str, Any]:
        return {}

    def to_source(self, fields: Any, *, current: Any = None) -> dict[str, Any]:
        return {}


@pytest.fixture
def fake_module() -> Iterator[str]:
    module = types.ModuleType("cdcsync_test_mappers")
    module.NotAMapper = NotAMapper  # type: ignore[attr-defined]
    module.AlmostAMapper = AlmostAMapper  # type: ignore[attr-defined]
    module.CONSTANT = 3  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module.__name__
    del sys.modules[module.__name__]


def test_plain_mapping_builds_a_field_map() -> None:
    mapper = build_mapper({"email": "email", "status": {"column": "state", "mode": "if_new"}})
    assert isinstance(mapper, FieldMap)
    assert mapper.to_external({"email": "a", "state": "s"}) == {"email": "a", "status": "s"}


def test_python_mapper_with_options_and_a_wrapped_mapping() -> None:
    mapper = build_mapper({"email": "email"}, PC_PATH, {"company_column": "org"})
    assert isinstance(mapper, PersonCompanyMapper)
    assert isinstance(mapper, Mapper)
    assert mapper.company_column == "org"
    assert isinstance(mapper.mapping, FieldMap)
    assert mapper.columns == {"first_name", "last_name", "org", "email"}


@pytest.mark.parametrize("path", [PC_PATH, "cdcsync.mappers.person_company.PersonCompanyMapper"])
def test_python_mapper_alone(path: str) -> None:
    mapper = build_mapper(None, path)
    assert isinstance(mapper, PersonCompanyMapper)
    assert mapper.mapping is None


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        (
            {"s": {"column": "state", "mode": "merge"}},
            r"entities\.c\.mapping\.s\.mode: .*'overwrite'",
        ),
        ({"s": {"column": "state", "direction": "up"}}, r"mapping\.s\.direction: .*'both'"),
        (
            {"s": {"column": "state", "value_map": {"a": "X", "b": "X"}}},
            r"mapping\.s: value_map is not invertible: 'a' and 'b' both map to 'X'",
        ),
        ({"s": {"column": "state", "value_map": ["a"]}}, r"mapping\.s\.value_map: .*dictionary"),
        ({"s": {"column": "state", "value_map": {"a": {"x": 1}}}}, r"mapping\.s\.value_map\.a"),
        ({"s": {"column": "state", "value_map_default": "x"}}, "needs a value_map"),
        ({"s": {"col": "state"}}, r"mapping\.s\.column: Field required"),
        ({"s": 3}, r"mapping\.s: got a int; give a column name"),
        ({"a": "x", "b": "x"}, r"column 'x' is pulled from both 'a' and 'b'; set direction: push"),
        ({}, "at least one field"),
        (["email"], "must be a mapping"),
    ],
)
def test_bad_mappings(mapping: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        build_mapper(mapping, where="entities.c")


def test_push_only_value_map_need_not_be_invertible() -> None:
    mapper = build_mapper(
        {"s": {"column": "state", "value_map": {"a": "X", "b": "X"}, "direction": "push"}}
    )
    assert mapper.to_external({"state": "b"}) == {"s": "X"}


@pytest.mark.parametrize(
    ("path", "match"),
    [
        (
            "no_such_package_xyz.mod:Thing",
            r"mapper: cannot import module 'no_such_package_xyz\.mod'",
        ),
        ("cdcsync.mappers.person_company:Nope", r"has no 'Nope'; check the name"),
        ("JustAName", "is not an import path"),
        ("{mod}:CONSTANT", "is a int, not a class"),
        ("{mod}:NotAMapper", r"is not a Mapper \(no to_source\)"),
        ("{mod}:AlmostAMapper", "which is not a Mapper; it needs columns"),
    ],
)
def test_bad_mapper_paths(fake_module: str, path: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        build_mapper(None, path.format(mod=fake_module))


def test_unknown_option_names_the_signature() -> None:
    with pytest.raises(ConfigurationError, match=r"does not accept \['colour'\].*company_column"):
        build_mapper(None, PC_PATH, {"colour": "red"})


def test_mapper_rejecting_its_options_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"rejected its options.*distinct"):
        build_mapper(None, PC_PATH, {"company_column": "first_name"})


def test_mapping_inside_options_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="'mapping' is not an option"):
        build_mapper(None, PC_PATH, {"mapping": {"a": "b"}})


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((None, None, None), "give a `mapping`"),
        ((None, None, {"x": 1}), "given without a mapper"),
    ],
)
def test_nothing_to_build(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        build_mapper(*args)
