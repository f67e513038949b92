"""The decision table: every combination of side, echo, policy, delete and unknown record."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdcsync.agents.change import RawEvent
from cdcsync.agents.decide import (
    coalescible_update,
    conflict_winner,
    decide,
    newer_side,
    row_matches,
)
from cdcsync.errors import MappingError
from cdcsync.mappers.fieldmap import FieldMap, payload_hash
from cdcsync.schemas.config import EntityConfig
from cdcsync.schemas.envelope import ChangeEvent, ExternalChange
from cdcsync.schemas.events import SourcePosition
from cdcsync.schemas.state import SyncState

NOW = 1_000_000_000_000
MAP = FieldMap({"firstName": "first_name", "email": "email"})
ROW = {"id": 1, "first_name": "Ada", "email": "a@x.org", "notes": "n", "kind": "person"}
PAYLOAD = {"firstName": "Ada", "email": "a@x.org"}
SYNCED = SyncState(
    external_id="x1",
    row_id="r1",
    payload_hash=payload_hash(PAYLOAD),
    last_partition=0,
    last_offset=10,
)
FAILED = SYNCED.model_copy(update={"status": "permanently_failed"})


def config(**overrides: Any) -> EntityConfig:
    policies = overrides.pop("policies", {})
    return EntityConfig(
        topic="t",
        natural_key=["email"],
        target={"provider": "rest"},
        mapping={"firstName": "first_name", "email": "email"},
        source={"table": "contact"},
        policies=policies,
        **overrides,
    )


def source(op: str, row: dict[str, Any] = ROW, before: dict[str, Any] | None = None) -> ChangeEvent:
    return ChangeEvent(
        entity_id="1",
        op=op,
        before=row if op == "delete" else before,
        after=None if op == "delete" else row,
    )


def external(
    change: str = "upsert", version: str | None = "r2", external_id: str = "x1"
) -> ChangeEvent:
    ext = ExternalChange(
        change=change,
        external_id=external_id,
        version=version,
        fields={"firstName": "Bo", "email": "a@x.org"},
    )
    return ChangeEvent(
        entity_id="1",
        op="delete" if change == "delete" else "update",
        before=None,
        after=None,
        origin="external",
        external=ext,
    )


def run(
    change: ChangeEvent, state: SyncState | None, cfg: EntityConfig | None = None, offset: int = 11
):
    return decide(
        change, state, config=cfg or config(), mapper=MAP, partition=0, offset=offset, now_ms=NOW
    )


# (name, change, state, config overrides, action, external_id, reason fragment)
CASES = [
    # source side changed
    ("insert, unknown", source("create"), None, {}, "create", None, "new row"),
    ("snapshot read, unknown", source("read"), None, {}, "create", None, "new row"),
    ("update of an unknown row", source("update"), None, {}, "create", None, "new row"),
    (
        "unmapped column changed",
        source("update", {**ROW, "notes": "x"}),
        SYNCED,
        {},
        "skip",
        "x1",
        "no mapped field changed",
    ),
    ("echo of our pull", source("update"), SYNCED, {}, "skip", "x1", "echo of our own pull"),
    (
        "mapped column changed",
        source("update", {**ROW, "first_name": "Bo"}),
        SYNCED,
        {},
        "update",
        "x1",
        "mapped fields changed",
    ),
    (
        "retry after a failed push",
        source("update"),
        FAILED,
        {},
        "update",
        "x1",
        "mapped fields changed",
    ),
    (
        "re-insert after delete",
        source("create"),
        SyncState(status="deleted"),
        {},
        "create",
        None,
        "new row",
    ),
    (
        "watched column unchanged",
        source("update", {**ROW, "first_name": "Bo"}, before=ROW),
        SYNCED,
        {"watch": ["email"]},
        "skip",
        "x1",
        "no watched column",
    ),
    (
        "watched column changed",
        source("update", {**ROW, "email": "b@x.org"}, before=ROW),
        SYNCED,
        {"watch": ["email"]},
        "update",
        "x1",
        "mapped fields changed",
    ),
    (
        "filtered out, never synced",
        source("create", {**ROW, "kind": "company"}),
        None,
        {"filter": {"kind": "person"}},
        "skip",
        None,
        "does not match the filter",
    ),
    (
        "stops matching the filter",
        source("update", {**ROW, "kind": "company"}),
        SYNCED,
        {"filter": {"kind": ["person", "lead"]}},
        "delete",
        "x1",
        "no longer matches",
    ),
    (
        "matches a filter list",
        source("create"),
        None,
        {"filter": {"kind": ["person"]}},
        "create",
        None,
        "new row",
    ),
    # source deletes
    ("delete, synced", source("delete"), SYNCED, {}, "delete", "x1", "row deleted"),
    (
        "delete, unknown: look up",
        source("delete"),
        None,
        {},
        "delete",
        None,
        "look up by natural key",
    ),
    (
        "delete, no before image",
        source("delete", {"id": 1}),
        None,
        {},
        "skip",
        None,
        "never synced",
    ),
    (
        "delete, already deleted",
        source("delete"),
        SyncState(status="deleted"),
        {},
        "skip",
        None,
        "already deleted",
    ),
    (
        "delete, policy ignore",
        source("delete"),
        SYNCED,
        {"policies": {"source_delete": "ignore"}},
        "skip",
        "x1",
        "source_delete=ignore",
    ),
    (
        "delete, policy mark",
        source("delete"),
        SYNCED,
        {"policies": {"source_delete": "mark", "mark_field": "archived"}},
        "mark_target",
        "x1",
        "source_delete=mark",
    ),
    # external side changed
    ("external change pulled", external(), SYNCED, {}, "pull", "x1", "external object changed"),
    ("echo of our push", external(version="r1"), SYNCED, {}, "skip", "x1", "echo"),
    ("external, entity unlinked", external(), None, {}, "skip", "x1", "not linked"),
    (
        "external, stale reference",
        external(external_id="x9"),
        SYNCED,
        {},
        "skip",
        "x9",
        "stale reference",
    ),
    # both sides changed: the source change is not pushed yet
    ("conflict, source wins", external(), FAILED, {}, "push_current", "x1", "source wins"),
    (
        "conflict, target wins",
        external(),
        FAILED,
        {"policies": {"conflict": "target_wins"}},
        "pull",
        "x1",
        "target wins",
    ),
    (
        "conflict, manual",
        external(),
        FAILED,
        {"policies": {"conflict": "manual"}},
        "park",
        "x1",
        "policy manual",
    ),
    (
        "conflict, newest wins",
        external(),
        FAILED,
        {
            "policies": {
                "conflict": "newest_wins",
                "source_timestamp": "updated_at",
                "target_timestamp": "modifiedAt",
            }
        },
        "push_current",
        "x1",
        "newest wins",
    ),
    # external deletes
    (
        "external delete, ignore",
        external("delete"),
        SYNCED,
        {},
        "skip",
        "x1",
        "target_delete=ignore",
    ),
    (
        "external delete, delete",
        external("delete"),
        SYNCED,
        {"policies": {"target_delete": "delete"}},
        "pull_delete",
        "x1",
        "target_delete=delete",
    ),
    (
        "external delete, mark",
        external("delete"),
        SYNCED,
        {"policies": {"target_delete": "mark", "mark_column": "archived"}},
        "mark_source",
        "x1",
        "target_delete=mark",
    ),
    # parked entities wait for an operator, whichever side changes
    (
        "parked, source change",
        source("update", {**ROW, "first_name": "Z"}),
        SYNCED.model_copy(update={"status": "conflict"}),
        {},
        "skip",
        None,
        "parked",
    ),
    (
        "parked, external change",
        external(),
        SYNCED.model_copy(update={"status": "conflict"}),
        {},
        "skip",
        None,
        "parked",
    ),
]


@pytest.mark.parametrize(
    ("change", "state", "overrides", "action", "external_id", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decision_table(change, state, overrides, action, external_id, reason):
    decision = run(change, state, config(**overrides))
    assert decision.action == action
    assert decision.external_id == external_id
    assert reason in decision.reason
    if action in ("create", "update"):
        assert decision.payload == MAP.to_external(change.after)
        assert decision.payload_hash == payload_hash(decision.payload)
    if action == "update":
        assert decision.expected_version == state.row_id  # If-Match catches a concurrent edit
    if action in ("pull", "push_current", "park"):
        assert decision.fields == change.external.fields
        assert decision.version == change.external.version


@pytest.mark.parametrize(
    ("partition", "offset", "skipped"), [(0, 9, True), (0, 10, True), (0, 11, False), (1, 5, False)]
)
def test_redelivered_offsets_are_skipped(partition, offset, skipped):
    changed = source("update", {**ROW, "first_name": "Bo"})
    decision = decide(
        changed, SYNCED, config=config(), mapper=MAP, partition=partition, offset=offset, now_ms=NOW
    )
    assert (decision.action == "skip") is skipped


def test_unmappable_row_raises_mapping_error():
    with pytest.raises(MappingError):
        run(source("create", {"id": 1}), None)


@pytest.mark.parametrize(
    ("source_ts", "target_ts", "winner"),
    [
        ("2026-01-01T10:00:00Z", "2026-01-01T10:00:01Z", "target"),
        ("2026-01-01T10:00:02Z", "2026-01-01T10:00:01+00:00", "source"),
        (1767261600000000, "2026-01-01T10:00:01Z", "target"),  # Debezium micros vs ISO
        ("2026-01-01T10:00:00", 1767261599, "source"),  # naive ISO vs epoch seconds
        (None, "2026-01-01T10:00:00Z", None),
        ("yesterday", "2026-01-01T10:00:00Z", None),
    ],
)
def test_newer_side(source_ts, target_ts, winner):
    assert newer_side(source_ts, target_ts) == winner


def test_row_filter():
    assert row_matches({"kind": "a", "x": 1}, {"kind": ["a", "b"], "x": 1})
    assert not row_matches({"kind": "c"}, {"kind": ["a", "b"]})
    assert row_matches({}, {})


@pytest.mark.parametrize(
    ("policy", "source_row", "target", "winner"),
    [
        ("source_wins", {"updated": 1}, {"modified": 2}, "source"),
        ("target_wins", {"updated": 2}, {"modified": 1}, "target"),
        ("manual", None, None, "manual"),
        ("newest_wins", {"updated": "2026-01-01T00:00:00Z"}, {"modified": "2026-01-02"}, "target"),
        ("newest_wins", {"updated": "2026-01-03T00:00:00Z"}, {"modified": "2026-01-02"}, "source"),
        # a missing or unreadable timestamp: the source wins
        ("newest_wins", {"updated": "2026-01-01"}, {}, "source"),
        ("newest_wins", None, {"modified": "not a date"}, "source"),
    ],
)
def test_conflict_winner(policy, source_row, target, winner):
    policies = config(
        policies={"conflict": policy, "source_timestamp": "updated", "target_timestamp": "modified"}
    ).policies
    assert conflict_winner(policies, source_row, target) == winner


def _raw(value: dict[str, Any] | None, *, key: bytes | None = b'{"id":1}') -> RawEvent:
    position = SourcePosition(topic="t", partition=0, offset=1)
    return RawEvent(key, json.dumps(value).encode() if value else None, position, 0)


@pytest.mark.parametrize(
    ("value", "overrides", "coalescible"),
    [
        ({"op": "u", "before": ROW, "after": ROW, "source": {}}, {}, True),
        ({"op": "c", "before": None, "after": ROW, "source": {}}, {}, False),
        ({"op": "d", "before": ROW, "after": None, "source": {}}, {}, False),
        ({"op": "u", "before": ROW, "after": ROW, "source": {}}, {"watch": ["email"]}, False),
        ({"origin": "external", "change": "upsert", "external_id": "x1"}, {}, False),
        ({"command": "retry"}, {}, False),
        (None, {}, False),  # a tombstone
        ({"op": "u"}, {}, False),  # malformed: the agent dead-letters it later
    ],
)
def test_only_plain_source_updates_coalesce(value, overrides, coalescible):
    change = coalescible_update(_raw(value), config(**overrides))
    assert (change is not None) is coalescible
    if coalescible:
        assert change.entity_id == "1" and change.after == ROW


PULLED = SYNCED.model_copy(update={"pulled_ms": 5_000})


def committed(ms: int, *, recheck: bool = False) -> ChangeEvent:
    change = source("update", {**ROW, "first_name": "Old"})
    return change.model_copy(update={"committed_ms": ms, "recheck": recheck})


def test_a_source_record_committed_before_our_last_pull_is_a_stale_echo():
    """The soak: an earlier pull's echo came after a later pull, and pushed the older row
    over an edit made since."""
    decision = run(committed(4_999), PULLED)
    assert (decision.action, decision.reason) == (
        "skip", "stale: committed before our last pull rewrote the row",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "state", "action"),
    [
        (committed(5_000), PULLED, "update"),  # at or after our write: a change to push
        (committed(4_999), SYNCED, "update"),  # no pull remembered
        (committed(4_999, recheck=True), PULLED, "verify"),  # a re-check reads the row now
        (source("update", {**ROW, "first_name": "Old"}), PULLED, "update"),  # no commit time
    ],
)
def test_only_a_record_committed_before_a_known_pull_is_stale(change, state, action):
    assert run(change, state).action == action
