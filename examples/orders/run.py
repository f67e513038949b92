"""The orders example, end to end: an order and its tickets to the shop, then finalize.

``python -m cdcsync.examples.orders`` prepares the stack (tables, topics,
connector), starts the reference API as the ticket shop and a worker, then:
inserts an order with three positions in one transaction (the order is created
first, each ticket carries the order's id, then the order gets its ticket ids);
inserts a second order while the shop refuses orders for a moment (its tickets
wait for it, in order); adds a fourth position to the first order (finalize
runs again, for the new list). It prints what happened and stops.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from cdcsync.examples.runner import EventLog, Example, Say
from cdcsync.schemas.config import Config

__all__ = ["FOLDER", "Report", "Shop", "insert_order", "main", "run"]

FOLDER = Path(__file__).resolve().parent

Event = tuple[str, dict[str, Any]]


@dataclass
class Report:
    """What one run did: its orders (id -> position ids) and the shop's objects at the end."""

    orders: dict[str, list[str]] = field(default_factory=dict)
    #: (entity, id) -> the shop's id: ("order", "1"), ("ticket", "1")
    external: dict[tuple[str, str], str] = field(default_factory=dict)
    shop_orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # order id -> object
    shop_tickets: dict[str, dict[str, Any]] = field(default_factory=dict)  # position id -> obj
    events: list[Event] = field(default_factory=list)


class Shop:
    """The ticket shop's API as a user reads it."""

    def __init__(self, config: Config, token: str) -> None:
        base = str(config.target("order").settings["base_url"])
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        self.admin = httpx.Client(base_url=base)

    def get(self, collection: str, external_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/{collection}/{external_id}")
        return dict(response.raise_for_status().json())

    def refuse_orders(self, times: int) -> None:
        """The shop answers the next ``times`` order creations with 503."""
        spec = {"status": 503, "count": times, "path": "/api/v1/orders", "method": "POST"}
        self.admin.post("/_admin/faults", json=spec).raise_for_status()

    def close(self) -> None:
        self.client.close()
        self.admin.close()


def insert_order(
    conn: psycopg.Connection[Any], code: str, items: list[tuple[str, str, str]]
) -> tuple[str, list[str]]:
    """One order and its positions (item, price, attendee) in one transaction; their ids."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO shop_order (code, email, status, total) VALUES (%s, %s, 'paid', %s) "
            "RETURNING id",
            (code, f"{code.lower()}@example.org", sum(float(p) for _i, p, _a in items)),
        ).fetchone()
        assert row is not None
        order_id = str(row[0])
        positions = [add_position(conn, order_id, code, n, *item) for n, item in enumerate(items)]
    return order_id, positions


def add_position(
    conn: psycopg.Connection[Any], order_id: str, code: str, n: int, item: str, price: str,
    attendee: str,
) -> str:  # fmt: skip
    """One position of an order; its id."""
    row = conn.execute(
        "INSERT INTO order_position (order_id, position_code, item, price, attendee_name) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (order_id, f"{code}-{n + 1}", item, price, attendee),
    ).fetchone()
    assert row is not None
    return str(row[0])


def _show(say: Say) -> Callable[[str, dict[str, Any]], None]:
    def show(_topic: str, e: dict[str, Any]) -> None:
        ext = (e.get("external") or {}).get("id") or ""
        tries = f" (attempt {e['attempts']})" if e.get("attempts", 1) > 1 else ""
        say(
            f"    {e['kind']:<11} {e['entity']:<6} {e['entity_id']:>5} "
            f"{e.get('action', '-'):<8} {ext:<12} {e.get('reason', e.get('error', ''))}{tries}"
        )

    return show


def _mine(order_id: str, positions: list[str]) -> Callable[[str, dict[str, Any]], bool]:
    """Events of this order and these positions, and every dead letter."""

    def want(_topic: str, e: dict[str, Any]) -> bool:
        if e["kind"] == "dead_letter":
            return True
        ids = {"order": {order_id}, "ticket": set(positions)}.get(e["entity"], set())
        return bool(e["entity_id"] in ids)

    return want


def _finalizes(order_id: str, n: int) -> Callable[[dict[str, Any]], bool]:
    """The order's finalize result for ``n`` tickets."""

    def want(e: dict[str, Any]) -> bool:
        return bool(
            e["kind"] == "result" and e["entity"] == "order" and e["entity_id"] == order_id
            and e["action"] == "finalize" and f"of {n} children" in e["reason"]
        )  # fmt: skip

    return want


def _wait_finalized(
    log: EventLog, order_id: str, positions: list[str], n: int, say: Say, report: Report
) -> None:
    mine, show = _mine(order_id, positions), _show(say)
    start = len(log.seen)

    def on_event(topic: str, e: dict[str, Any]) -> None:
        if mine(topic, e):
            show(topic, e)

    done = log.wait(_finalizes(order_id, n), timeout_s=90, on_event=on_event)
    found = [(t, e) for t, e in log.seen[start:] if mine(t, e)]
    report.events += found
    for _t, e in found:
        if e.get("external") and e["kind"] == "result":
            report.external[e["entity"], e["entity_id"]] = e["external"]["id"]
    if not done:
        raise SystemExit(f"order {order_id} was not finalized with {n} tickets; see the log")


def run(config_path: Path | None = None, *, say: Say = print, token: str | None = None) -> Report:
    """Run the example once; raise ``SystemExit`` if something did not happen."""
    with Example(FOLDER, config_path=config_path, say=say) as ex:
        config = ex.config
        say("1/5 the example's tables, topics and connector on the local stack")
        ex.prepare()
        say("2/5 the ticket shop (reference API) and a worker")
        env = ex.serve_target("order", token)
        (token,) = env.values()
        ex.start_worker(env=env)
        log = ex.watch()
        shop = Shop(config, token)
        report = Report()
        try:
            _scenario(ex, log, shop, report, say)
        finally:
            shop.close()
        say("done; the worker and the shop stopped, the stack keeps running")
    return report


def _scenario(ex: Example, log: EventLog, shop: Shop, report: Report, say: Say) -> None:
    tag = uuid.uuid4().hex[:5].upper()
    tickets = [("Conference day 1", "120.00", "Ada"), ("Conference day 2", "120.00", "Ada"),
               ("Workshop", "80.00", "Alan")]  # fmt: skip

    say("3/5 an order with three positions, in one transaction")
    with ex.db() as conn:
        first, positions = insert_order(conn, f"A{tag}", tickets)
    report.orders[first] = positions
    _wait_finalized(log, first, positions, 3, say, report)

    say("4/5 a second order while the shop refuses orders twice: its tickets wait for it")
    shop.refuse_orders(2)
    with ex.db() as conn:
        second, positions2 = insert_order(conn, f"B{tag}", tickets[:2])
    report.orders[second] = positions2
    _wait_finalized(log, second, positions2, 2, say, report)

    say("5/5 a fourth position added to the first order: finalize runs for the new list")
    with ex.db() as conn:
        extra = add_position(conn, first, f"A{tag}", 3, "Dinner", "45.00", "Alan")
    report.orders[first].append(extra)
    _wait_finalized(log, first, [extra], 4, say, report)

    say("\nthe shop now holds:")
    for order_id, position_ids in report.orders.items():
        order = shop.get("orders", report.external["order", order_id])
        report.shop_orders[order_id] = order
        say(f"  order {order['id']} {order['code']}: ticketIds={order.get('ticketIds')}")
        for pid in position_ids:
            ticket = shop.get("tickets", report.external["ticket", pid])
            report.shop_tickets[pid] = ticket
            say(f"    ticket {ticket['id']} {ticket['code']:<10} orderId={ticket['orderId']}")


def main() -> None:
    """``python -m cdcsync.examples.orders``."""
    run()
