"""Associations: children carry their parent's id, wait for it, and let it finalize once."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cdcsync.agents.associations import (
    ParentLink,
    child_control,
    finalize_digest,
    parent_key,
    readiness,
    record_child,
    with_parent,
)
from cdcsync.agents.change import Decision
from cdcsync.errors import SinkTransientError
from cdcsync.schemas.config import ChildConfig, Config
from cdcsync.schemas.envelope import ChangeEvent
from cdcsync.schemas.state import SyncState

LINK = ChildConfig(entity="position", column="order_id", field="orderId")


def _link(links: dict[str, str]) -> ParentLink:
    return ParentLink(parent="order", child=LINK, links=links, topic=None, key_field="id")  # type: ignore[arg-type]


def _change(op: str = "create", **row: Any) -> ChangeEvent:
    before = row if op == "delete" else None
    after = None if op == "delete" else row
    return ChangeEvent(entity_id=str(row["id"]), op=op, before=before, after=after)  # type: ignore[arg-type]


def test_a_child_carries_its_parents_external_id() -> None:
    decision = Decision("create", "new", payload={"item": "T-shirt"})
    out = with_parent(decision, _change(id=7, order_id=3), _link({"3": "ext-order-3"}))
    assert out.payload == {"item": "T-shirt", "orderId": "ext-order-3"}
    assert decision.payload == {"item": "T-shirt"}  # the original is untouched


def test_a_child_whose_parent_is_not_synced_waits() -> None:
    with pytest.raises(SinkTransientError, match="waiting for its parent order 3") as caught:
        with_parent(Decision("create", "new", payload={}), _change(id=7, order_id=3), _link({}))
    assert caught.value.retry_after == 1.0


def test_decisions_without_payload_and_orphans_need_no_parent() -> None:
    skip = Decision("skip", "unchanged")
    assert with_parent(skip, _change(id=7, order_id=3), _link({})) is skip
    create = Decision("create", "new", payload={"a": 1})
    assert with_parent(create, _change(id=7, order_id=None), _link({})) is create


def test_the_parent_key_of_a_deleted_child_comes_from_before() -> None:
    assert parent_key(_change("delete", id=7, order_id=3), "order_id") == "3"


def test_the_parent_records_its_children_and_forgets_removed_ones() -> None:
    state = record_child(SyncState(), child_control("position", "7", "p7"))
    state = record_child(state, child_control("position", "8", "p8"))
    assert state.children == {"position": {"7": "p7", "8": "p8"}}
    state = record_child(state, child_control("position", "7", None))
    assert state.children == {"position": {"8": "p8"}}


def test_finalize_waits_for_every_child_row_of_the_source() -> None:
    state = SyncState(children={"position": {"9": "p9", "10": "p10"}})
    waiting = readiness(state, {"position": ["9", "10", "11"]}, order=["position"])
    assert not waiting.ready and (waiting.missing, waiting.total) == (1, 3)
    ready = readiness(state, {"position": ["10", "9"]}, order=["position"])
    assert ready.ready and ready.external_ids == ["p9", "p10"]  # numeric key order


def test_the_finalize_digest_changes_with_the_children() -> None:
    assert finalize_digest(["a", "b"]) == finalize_digest(["a", "b"])
    assert finalize_digest(["a", "b"]) != finalize_digest(["a"])


def _entities(**order: Any) -> dict[str, Any]:
    target = {"provider": "rest", "settings": {}}
    return {
        "order": {"topic": "t.order", "mapping": {"code": "code"}, "target": target, **order},
        "position": {
            "topic": "t.position", "mapping": {"item": "item"}, "target": target,
            "source": {"table": "order_position"},
        },
    }  # fmt: skip


def test_the_config_links_a_child_to_its_parent() -> None:
    children = [{"entity": "position", "column": "order_id", "field": "orderId"}]
    config = Config.model_validate(
        {"entities": _entities(children=children, finalize={"field": "positionIds"})}
    )
    assert config.parent_of("position") == ("order", LINK)
    assert config.parent_of("order") is None


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ({"finalize": {"field": "x"}}, "finalize needs children"),
        (
            {"children": [{"entity": "nope", "column": "c", "field": "f"}]},
            "'nope' is not another entity of this file",
        ),
    ],
)
def test_wrong_associations_are_refused(order: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config.model_validate({"entities": _entities(**order)})


def test_a_child_needs_a_source_table() -> None:
    entities = _entities(children=[{"entity": "position", "column": "order_id", "field": "o"}])
    del entities["position"]["source"]
    with pytest.raises(
        ValueError, match=re.escape("the child 'position' needs `source: {table: ...}`")
    ):
        Config.model_validate({"entities": entities})
