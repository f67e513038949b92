"""The state tables: a write counts as done only once its changelog record is in Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.assignor.client_assignment import ClientAssignment
from kafka.errors import KafkaError

from cdcsync.agents.deliveries import Deliveries, current
from cdcsync.errors import DeliveryError
from cdcsync.schemas.config import Config
from cdcsync.streams.tables import declare_polled, declare_refs, declare_tables, declare_webhook_ids
from cdcsync.testing.world import CONTACT


def _app() -> tuple[faust.App, Config]:
    """An in-memory app and a configuration with the contact entity."""
    app = faust.App("cdcsync-test-tables", broker="memory://", store="memory://")
    return app, Config(entities={"contact": CONTACT})


def _tables(monkeypatch: pytest.MonkeyPatch, delivery: asyncio.Future[Any]) -> list[Any]:
    """The contact entity's state and refs tables, on an app whose changelog sends return
    ``delivery``."""
    monkeypatch.setattr(faust.Table, "send_changelog", lambda self, *a, **k: delivery)
    monkeypatch.setattr(faust.GlobalTable, "send_changelog", lambda self, *a, **k: delivery)
    app, config = _app()
    return [declare_tables(app, config)["contact"], declare_refs(app, config)["contact"]]


@pytest.mark.parametrize("which", [0, 1], ids=["state", "refs"])
async def test_a_step_waits_for_its_state_write_to_reach_the_changelog(
    monkeypatch: pytest.MonkeyPatch, which: int
) -> None:
    delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    table = _tables(monkeypatch, delivery)[which]
    step = Deliveries()
    token = current.set(step)
    table.send_changelog(0, "1", {"status": "synced"})
    current.reset(token)
    confirming = asyncio.create_task(step.confirm())
    await asyncio.sleep(0.05)
    assert not confirming.done()  # not acked while the state is only in a buffer
    delivery.set_result(None)
    await asyncio.wait_for(confirming, 1)


async def test_a_lost_state_write_fails_the_step_so_its_records_are_not_acked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    state, _ = _tables(monkeypatch, delivery)
    step = Deliveries()
    token = current.set(step)
    state.send_changelog(0, "1", {"status": "synced"})
    current.reset(token)
    delivery.set_exception(KafkaError("NotLeaderForPartition"))
    with pytest.raises(DeliveryError, match="changelog record was not delivered"):
        await step.confirm()


async def test_a_write_outside_a_step_is_not_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    state, _ = _tables(monkeypatch, delivery)
    assert current.get() is None
    assert state.send_changelog(0, "1", {"status": "synced"}) is delivery  # no step: no error


def test_refs_are_a_global_table_whole_on_every_worker() -> None:
    # Declared by class, a GlobalTable is global only if told so (app.GlobalTable does):
    # otherwise Faust's assignor gives each worker its own partitions only, its memory
    # store drops the rest after each recovery, and the poller takes the objects linked on
    # other workers' partitions for unknown (quick soak 120104368f37: 340 of 870).
    app, config = _app()
    refs = declare_refs(app, config)["contact"]
    assert refs.is_global
    changelog = refs.changelog_topic.get_topic_name()
    mine = ClientAssignment(actives={changelog: [0, 1]}, standbys={})
    app.assignor._global_table_standby_assignments({"w1": mine}, {changelog: 4})
    assert sorted(mine.actives[changelog]) == [0, 1, 2, 3]  # recovered in full
    assert sorted(mine.standbys[changelog]) == [2, 3]  # and the others' writes read on


def test_global_tables_apply_other_workers_writes_one_by_one() -> None:
    # Faust reads a global table's partitions as active and applies their records in
    # batches of the recovery buffer even after recovery: with the default 1,000, another
    # worker's writes waited for the next rebalance (a quick soak's poller ended with 120
    # linked objects unknown to it).
    app, config = _app()
    tables = [declare_refs(app, config)["contact"], declare_polled(app, config)["contact"],
              declare_webhook_ids(app, config)]  # fmt: skip
    for table in tables:
        assert table.is_global
        assert (table.recovery_buffer_size, table.standby_buffer_size) == (1, 1), table.name
