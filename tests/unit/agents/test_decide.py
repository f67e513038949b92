import pytest

from cdcsync.agents.decide import decide
from cdcsync.errors import MappingError
from cdcsync.mappers.fieldmap import FieldMap, payload_hash
from cdcsync.schemas.envelope import ChangeEvent
from cdcsync.schemas.state import SyncState

MAP = FieldMap({"firstName": "first_name", "email": "email"})
ROW = {"id": 1, "first_name": "Ada", "email": "a@x.org", "notes": "n"}
PAYLOAD = {"firstName": "Ada", "email": "a@x.org"}


def change(op, row=ROW):
    return ChangeEvent(
        entity_id="1",
        op=op,
        before=row if op == "delete" else None,
        after=None if op == "delete" else row,
    )


SYNCED = SyncState(
    external_id="x1",
    row_id="r1",
    payload_hash=payload_hash(PAYLOAD),
    last_partition=0,
    last_offset=10,
)


@pytest.mark.parametrize(
    ("op", "row", "state", "action", "external_id", "reason"),
    [
        ("create", ROW, None, "create", None, "new row"),
        ("read", ROW, None, "create", None, "new row"),
        ("update", ROW, None, "create", None, "new row"),
        ("update", {**ROW, "notes": "other"}, SYNCED, "skip", "x1", "no mapped field changed"),
        ("read", ROW, SYNCED, "skip", "x1", "no mapped field changed"),
        ("update", {**ROW, "first_name": "Bo"}, SYNCED, "update", "x1", "mapped fields changed"),
        (
            "update",
            ROW,
            SYNCED.model_copy(update={"status": "failed"}),
            "update",
            "x1",
            "mapped fields changed",
        ),
        (
            "update",
            ROW,
            SYNCED.model_copy(update={"status": "deleted", "external_id": None}),
            "create",
            None,
            "new row",
        ),
        ("delete", ROW, SYNCED, "delete", "x1", "row deleted"),
        ("delete", ROW, None, "delete", None, "look up by natural key"),
        ("delete", {"id": 1}, None, "skip", None, "never synced"),
        ("delete", ROW, SyncState(status="deleted"), "skip", None, "already deleted"),
    ],
)
def test_decision_table(op, row, state, action, external_id, reason):
    decision = decide(change(op, row), state, fieldmap=MAP, partition=0, offset=11)
    assert decision.action == action
    assert decision.external_id == external_id
    assert reason in decision.reason
    if action in ("create", "update"):
        assert decision.payload == MAP.to_external(row)
        assert decision.payload_hash == payload_hash(decision.payload)


@pytest.mark.parametrize(
    ("partition", "offset", "skipped"), [(0, 9, True), (0, 10, True), (0, 11, False), (1, 5, False)]
)
def test_redelivered_offsets_are_skipped(partition, offset, skipped):
    changed = change("update", {**ROW, "first_name": "Bo"})
    decision = decide(changed, SYNCED, fieldmap=MAP, partition=partition, offset=offset)
    assert (decision.action == "skip") is skipped


def test_unmappable_row_raises_mapping_error():
    with pytest.raises(MappingError):
        decide(change("create", {"id": 1}), None, fieldmap=MAP, partition=0, offset=0)
