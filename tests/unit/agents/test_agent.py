"""The agent function: records taken in bursts go to lanes; each is acked when it ended."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from cdcsync.agents.build import agent_for


class Message:
    """Faust's message refcount: acked to the consumer when the last reference is dropped."""

    def __init__(self, offset: int, consumer: list[int]) -> None:
        self.topic, self.partition, self.offset = "t", 0, offset
        self.refcount, self.acked, self.consumer = 1, False, consumer

    def incref(self, n: int = 1) -> None:
        self.refcount += n

    def ack(self) -> None:
        self.refcount = max(self.refcount - 1, 0)
        if not self.acked and not self.refcount:
            self.acked = True
            self.consumer.append(self.offset)


class Event:
    def __init__(self, key: bytes, message: Message) -> None:
        self.key, self.message = key, message

    def ack(self) -> None:
        self.message.ack()


class Stream:
    """take_events as Faust runs it: each burst acked once the loop body is done with it."""

    def __init__(self, bursts: list[list[Event]]) -> None:
        self.bursts, self.end = bursts, asyncio.Event()

    async def take_events(self, max_: int, within: float) -> Any:
        for burst in self.bursts:
            yield burst
            for event in burst:
                event.ack()
        await self.end.wait()  # a real stream runs until the worker stops


async def test_a_record_is_acked_when_its_lane_ended_not_when_its_burst_was_taken():
    committed: list[int] = []
    release, steps = asyncio.Event(), []

    async def process_key(events: list[Event]) -> None:
        if events[0].key == b"slow":
            await release.wait()
        steps.append([e.message.offset for e in events])

    sync = SimpleNamespace(entity="contact", process_key=process_key)
    config = SimpleNamespace(app=SimpleNamespace(max_in_flight=10))
    burst = [Event(k, Message(i, committed)) for i, k in enumerate([b"slow", b"a", b"a", b"b"])]
    stream = Stream([burst, [Event(b"c", Message(4, committed))]])
    agent = asyncio.create_task(agent_for(sync, config)(stream))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert sorted(committed) == [1, 2, 3, 4]  # the slow key's record is not acked yet
    assert [1, 2] in steps  # a's two records of one burst ran as one step
    release.set()
    await asyncio.sleep(0.05)
    assert sorted(committed) == [0, 1, 2, 3, 4]
    stream.end.set()
    await agent
