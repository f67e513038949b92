import json

import pytest

from cdcsync.errors import SchemaError
from cdcsync.schemas.envelope import ChangeEvent, Ignored, encode_key, parse_change, parse_key

KEY = b'{"id": 42}'
ROW = {"id": 42, "first_name": "Ada", "email": "ada@example.org"}


def envelope(op: str, before=None, after=None, **extra):
    return json.dumps(
        {
            "before": before,
            "after": after,
            "op": op,
            "source": {
                "table": "contact",
                "schema": "public",
                "snapshot": "false",
                "ts_ms": 1700000000000,
                "lsn": 1,
            },
            **extra,
        }
    ).encode()


@pytest.mark.parametrize(("op", "name"), [("c", "create"), ("u", "update"), ("r", "read")])
def test_upserts_carry_after(op, name):
    change = parse_change(KEY, envelope(op, after=ROW), key_field="id")
    assert isinstance(change, ChangeEvent)
    assert (change.entity_id, change.op, change.after) == ("42", name, ROW)
    assert change.committed_ms == 1700000000000


def test_delete_carries_before():
    change = parse_change(KEY, envelope("d", before=ROW), key_field="id")
    assert isinstance(change, ChangeEvent)
    assert change.op == "delete" and change.before == ROW


def test_tombstone_is_ignored_with_reason():
    result = parse_change(KEY, None, key_field="id")
    assert isinstance(result, Ignored)
    assert result.entity_id == "42" and "tombstone" in result.reason


def test_string_keys_are_kept():
    change = parse_change(b'{"id": "c-7"}', envelope("c", after={"id": "c-7"}), key_field="id")
    assert change.entity_id == "c-7"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (None, envelope("c", after=ROW), "no key"),
        (b"not json", envelope("c", after=ROW), "key is not JSON"),
        (b"[42]", envelope("c", after=ROW), "key must be a JSON object"),
        (b'{"other": 1}', envelope("c", after=ROW), "has no 'id' field"),
        (b'{"id": {"x": 1}}', envelope("c", after=ROW), "must be a string or integer"),
        (KEY, b"{not json", "value is not JSON"),
        (KEY, b"\xff\xfe", "value is not JSON"),
        (KEY, b"[1, 2]", "must be a JSON object"),
        (KEY, b'{"after": {}}', "not a Debezium envelope: op"),
        (KEY, envelope("x", after=ROW), "unsupported op 'x'"),
        (KEY, envelope("t"), "unsupported op 't'"),
        (KEY, envelope("c"), "without 'after'"),
        (KEY, envelope("d"), "REPLICA IDENTITY FULL"),
        (b'{"id": 7}', envelope("u", after=ROW), "does not match"),
    ],
)
def test_malformed_records_raise_schema_error_with_reason(key, value, message):
    with pytest.raises(SchemaError, match=message.replace("(", r"\(")):
        parse_change(key, value, key_field="id")


def test_states_written_with_the_old_failed_status_still_load():
    from cdcsync.schemas.state import SyncState

    assert SyncState.model_validate({"status": "failed"}).status == "permanently_failed"


@pytest.mark.parametrize(
    ("entity_id", "key_type", "key"),
    [
        ("42", "integer", b'{"id":42}'),
        (42, "integer", b'{"id":42}'),
        ("-3", "integer", b'{"id":-3}'),
        ("123", "text", b'{"id":"123"}'),  # a text id that looks like a number stays text
        ("00123", "text", b'{"id":"00123"}'),
        ("A-7", "text", b'{"id":"A-7"}'),
    ],
)
def test_keys_are_byte_identical_to_debeziums(entity_id, key_type, key):
    assert encode_key("id", entity_id, key_type=key_type) == key
    assert parse_key(key, key_field="id") == str(entity_id)


@pytest.mark.parametrize("entity_id", ["00123", "A-7", "1.5", ""])
def test_an_id_that_is_no_integer_is_refused_for_an_integer_key(entity_id):
    with pytest.raises(SchemaError, match="key_type: text"):
        encode_key("id", entity_id)
