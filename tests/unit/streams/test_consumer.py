"""The worker's seek back to the committed offsets: offset 0 and no offset are rewound too."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import yaml
from aiokafka import TopicPartition

from cdcsync.schemas.config import Config
from cdcsync.streams import consumer as worker_consumer
from cdcsync.streams.consumer import seek_to_committed
from cdcsync.streams.producer import Producer


class FakeConsumer:
    """The part of aiokafka's consumer the seek uses; positions start past two records."""

    def __init__(self, committed: dict[TopicPartition, int | None]) -> None:
        self._committed = committed
        self.positions = {tp: 2 for tp in committed}

    def assignment(self) -> set[TopicPartition]:
        return set(self._committed)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self._committed[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}


TICKET = [TopicPartition("ticket", p) for p in range(3)]
CHANGELOG = TopicPartition("app-state_ticket-changelog", 0)


async def test_offset_zero_and_no_offset_are_rewound_like_any_other() -> None:
    # aiokafka's own seek_to_committed leaves [0] and [2] at 2: the records dropped are skipped.
    fake = FakeConsumer({TICKET[0]: 0, TICKET[1]: 1, TICKET[2]: None})
    got = await seek_to_committed(fake, reset="earliest")  # type: ignore[arg-type]
    assert got == {TICKET[0]: 0, TICKET[1]: 1, TICKET[2]: None}
    assert fake.positions == {TICKET[0]: 0, TICKET[1]: 1, TICKET[2]: 0}


async def test_latest_leaves_a_partition_without_offset_where_it_is() -> None:
    fake = FakeConsumer({TICKET[0]: 0, TICKET[2]: None})
    await seek_to_committed(fake, reset="latest")  # type: ignore[arg-type]
    assert fake.positions == {TICKET[0]: 0, TICKET[2]: 2}


async def test_faust_internal_topics_are_sought_only_above_zero() -> None:
    other = TopicPartition("app-state_ticket-changelog", 1)
    fake = FakeConsumer({CHANGELOG: None, other: 0, TICKET[0]: 0})
    internal = {CHANGELOG.topic}
    await seek_to_committed(fake, reset="earliest", internal=internal)  # type: ignore[arg-type]
    assert fake.positions == {CHANGELOG: 2, other: 2, TICKET[0]: 0}


def test_the_app_consumes_with_the_worker_consumer(tmp_path: Any) -> None:
    from cdcsync.streams.app import create_app

    data: dict[str, Any] = {
        "app": {"id": "t-consumer", "datadir": str(tmp_path)},
        "entities": {
            "contact": {
                "topic": "t.contact",
                "mapping": {"email": "email"},
                "target": {"provider": "rest", "settings": {"base_url": "http://127.0.0.1:1"}},
            }
        },
    }
    config = Config.model_validate(yaml.safe_load(yaml.safe_dump(data)))
    app = create_app(config)
    assert isinstance(app.transport, worker_consumer.Transport)
    assert app.transport.Consumer is worker_consumer.Consumer


def test_the_worker_producer_is_idempotent(consumer):
    # aiokafka sends a batch again when its answer is lost (a broker restart): without
    # idempotence the broker writes it twice, and a result is reported twice.
    producer = consumer.app.producer
    assert isinstance(producer, Producer)
    settings = producer._settings_extra()  # what Faust adds to aiokafka's producer settings
    assert settings["enable_idempotence"] is True and settings["acks"] == "all"


def test_the_worker_producer_buffers_a_burst_of_table_writes(consumer):
    from cdcsync.streams.sync_app import CHANGELOG_BUFFER

    assert consumer.app.producer.buffer.max_messages == CHANGELOG_BUFFER > 100


async def test_the_seek_says_where_each_entity_partition_starts() -> None:
    fake = FakeConsumer({TICKET[0]: 0, TICKET[1]: 7, TICKET[2]: None, CHANGELOG: 3})
    starts: dict = {}
    await seek_to_committed(fake, reset="earliest", internal={CHANGELOG.topic}, starts=starts)  # type: ignore[arg-type]
    assert starts == {TICKET[0]: 0, TICKET[1]: 7, TICKET[2]: 0}


class _InFlight:
    """A record handed out, in Faust's weak set of unacked messages."""

    acked = False
    refcount = 1


async def test_the_wait_for_records_in_flight_does_not_collect_garbage_per_ack(
    consumer, monkeypatch
) -> None:
    # Faust collects garbage after each ack: a full soak's revocation spent 94% of the
    # worker's CPU in gc.collect() while the lanes it waited for starved.
    collections = []
    monkeypatch.setattr(gc, "collect", lambda: collections.append(1))

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(consumer, "commit", nothing)
    monkeypatch.setattr(consumer, "loop", asyncio.get_running_loop())  # made outside the test
    monkeypatch.setattr(consumer, "commit_and_end_transactions", nothing)
    records = [_InFlight() for _ in range(200)]
    consumer._unacked_messages.update(records)

    async def ack_one_by_one() -> None:
        for record in records:
            await asyncio.sleep(0.001)
            record.acked = True
            if consumer._waiting_for_ack is not None and not consumer._waiting_for_ack.done():
                consumer._waiting_for_ack.set_result(None)

    acks = asyncio.ensure_future(ack_one_by_one())
    await asyncio.wait_for(consumer.wait_empty(), 10)
    await acks
    assert not consumer._unacked_messages
    assert len(collections) <= 1  # Faust's own: about one per ack
