import pytest

from cdcsync.errors import MappingError
from cdcsync.mappers.fieldmap import FieldMap, payload_hash

MAP = FieldMap({"firstName": "first_name", "email": "email"})


def test_maps_only_mapped_columns():
    row = {"id": 1, "first_name": "Ada", "email": "a@x.org", "notes": "secret notes"}
    assert MAP.to_external(row) == {"firstName": "Ada", "email": "a@x.org"}


def test_missing_column_names_it():
    with pytest.raises(MappingError, match=r"\['email'\]"):
        MAP.to_external({"first_name": "Ada"})


def test_non_scalar_value_is_a_mapping_error():
    with pytest.raises(MappingError, match="JSON scalar"):
        MAP.to_external({"first_name": {"nested": 1}, "email": "a@x.org"})


def test_hash_ignores_key_order_and_sees_values():
    assert payload_hash({"a": 1, "b": 2}) == payload_hash({"b": 2, "a": 1})
    assert payload_hash({"a": 1}) != payload_hash({"a": 2})


def test_empty_map_is_rejected():
    with pytest.raises(MappingError):
        FieldMap({})
