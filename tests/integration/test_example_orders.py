"""The orders example on the real stack: associations (order, tickets) and finalize."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cdcsync.examples.orders.run import FOLDER, Report, run
from cdcsync.examples.runner import edit_config
from cdcsync.stack.settings import StackSettings


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    from cdcsync.streams.commands import stack_up
    from cdcsync.streams.config import load_config

    def fresh(data: dict[str, Any]) -> None:
        data["app"]["id"] = f"cdcsync-it-orders-{uuid.uuid4().hex[:8]}"
        data["app"]["broker"] = f"kafka://{StackSettings().bootstrap_servers}"

    path = edit_config(
        FOLDER / "cdcsync.yaml", tmp_path_factory.mktemp("orders") / "cdcsync.yaml", fresh
    )
    stack_up(load_config(path))  # the local stack (its own connector is the example's job)
    return run(path, say=lambda _line: None)


def _results(report: Report, action: str) -> Counter[tuple[str, str]]:
    return Counter(
        (e["entity"], e["entity_id"])
        for _t, e in report.events
        if e["kind"] == "result" and e["action"] == action
    )


def test_every_ticket_carries_its_orders_external_id(report: Report) -> None:
    for order_id, positions in report.orders.items():
        order = report.shop_orders[order_id]
        for pid in positions:
            assert report.shop_tickets[pid]["orderId"] == order["id"]


def test_finalize_writes_the_tickets_in_position_order(report: Report) -> None:
    for order_id, positions in report.orders.items():
        expected = [report.shop_tickets[pid]["id"] for pid in positions]
        assert report.shop_orders[order_id]["ticketIds"] == expected
        codes = [report.shop_tickets[pid]["code"] for pid in positions]
        assert codes == sorted(codes)


def test_finalize_runs_once_per_list_of_tickets(report: Report) -> None:
    first, second = report.orders
    finalized = _results(report, "finalize")
    assert finalized == {("order", first): 2, ("order", second): 1}  # 3 tickets, then 4


def test_each_row_is_created_once_and_nothing_is_dead_lettered(report: Report) -> None:
    created = _results(report, "create")
    expected = {("order", o) for o in report.orders} | {
        ("ticket", p) for positions in report.orders.values() for p in positions
    }
    assert set(created) == expected and set(created.values()) == {1}
    assert not [e for _t, e in report.events if e["kind"] == "dead_letter"]


def test_tickets_of_a_refused_order_waited_for_it(report: Report) -> None:
    second = list(report.orders)[1]
    attempts = {
        (e["entity"], e["entity_id"]): e["attempts"]
        for _t, e in report.events
        if e["kind"] == "result" and e["action"] == "create"
    }
    assert attempts["order", second] == 3  # the shop refused it twice
    for pid in report.orders[second]:
        assert attempts["ticket", pid] >= 2  # parked until the order had its id


def test_the_example_runs_from_its_own_folder() -> None:
    assert Path(FOLDER, "cdcsync.yaml").exists() and Path(FOLDER, "schema.sql").exists()
