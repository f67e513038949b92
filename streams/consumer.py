"""The worker's Kafka consumer: Faust's aiokafka consumer, with a seek that rewinds offset 0
too, and commits of the entity topics that never pass an unprocessed record.

Commits (``streams.commits``): records of a partition end out of order, and
Faust's rule can commit past an unfinished one, or past a block of records a
seek made it drop; a crash then loses them. On an entity topic the committed
offset moves only over records processed one after another from it, and a
record that stays unprocessed at the head while later ones were done is
fetched again.

Faust drops records it fetched but did not hand to an agent in two places:
``flow_control.resume()`` clears every agent's queue when a rebalance's recovery
ends, and ``Consumer.getmany`` discards a batch fetched while the flow is stopped.
Both rely on ``Consumer.perform_seek`` rewinding each partition to its committed
offset so the dropped records are fetched again.

aiokafka's ``seek_to_committed`` only seeks ``if offset and offset > 0``: a
partition whose committed offset is 0 (a new topic, a group that never
consumed it) or that has no committed offset keeps its fetch position, past
the dropped records. Those records are then not delivered to this worker
until its next rebalance, and once a later record of the partition is acked,
the commit moves past them for good. The records pending on a brand-new topic
(an entity enabled after a restart, a first deployment) are the ones exposed;
on a topic whose committed offset is above 0 the same drop is recovered.

The recovery also seeks *before* it clears the queues, while the agents
already consume: records fetched in between are dropped and not fetched again
until the next rebalance (the commit stays before them). :class:`Consumer`
therefore seeks to the committed offsets once more each time the flow resumes,
after the clear. What this fetches twice reaches the agents twice; they skip
what they already applied (the state's last offset per entity), and records are
row snapshots, so skipping an older one after a newer one loses nothing.

:class:`Consumer` seeks every assigned partition to its committed offset,
0 included; one without a committed offset goes back to the start of the
partition when ``app.auto_offset_reset`` is ``earliest`` (with ``latest`` its
position is left alone: a seek to the end would skip records too). Faust's own
topics (table changelogs, positioned by its recovery; the assignor's leader
topic) are sought as aiokafka does.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any

import aiokafka
import faust
from faust.transport import by_url
from faust.transport.consumer import CONSUMER_WAIT_EMPTY
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import Transport as FaustTransport
from faust.types import TP
from mode import Service

from cdcsync.streams.commits import commit_point
from cdcsync.streams.producer import Producer

__all__ = ["Consumer", "Transport", "install", "seek_to_committed"]

log = logging.getLogger(__name__)
#: How long the committed offset's record may stay unprocessed, while later records of its
#: partition were, before the partition is fetched again from it.
HEAD_STUCK_S = 30.0
#: While a rebalance or a stop waits for the records in flight: seconds between full garbage
#: collections, between commits, and between reports of what is still unacked.
WAIT_GC_S, WAIT_COMMIT_S, WAIT_REPORT_S = 5.0, 0.5, 10.0
_reseeks: set[asyncio.Future[None]] = set()


async def seek_to_committed(
    consumer: aiokafka.AIOKafkaConsumer,
    *,
    reset: str,
    internal: Collection[str] = (),
    starts: dict[Any, int] | None = None,
) -> dict[Any, int | None]:
    """Seek each assigned partition to its committed offset (0 too); the committed offsets.

    A partition without one goes to its beginning when ``reset`` is ``earliest``.
    The partitions of Faust's ``internal`` topics (table changelogs, whose positions
    its recovery owns, and the assignor's leader topic) are only sought above 0, as
    aiokafka does. ``starts`` gets the offset each other partition now starts from
    (Faust keeps no committed offset for 0 or none). Runs in the consumer's thread.
    """
    starts = {} if starts is None else starts
    committed: dict[Any, int | None] = {}
    rewind: list[Any] = []
    for tp in sorted(consumer.assignment()):
        offset = await consumer.committed(tp)
        committed[tp] = offset
        if tp.topic not in internal and offset is not None:
            starts[tp] = offset
        if offset is not None and offset > 0:
            consumer.seek(tp, offset)  # what aiokafka's seek_to_committed does
        elif tp.topic in internal:
            continue  # Faust positions these itself
        elif offset == 0:
            consumer.seek(tp, 0)  # the case aiokafka skips
        elif reset == "earliest":
            rewind.append(tp)
    if rewind:
        log.debug("no committed offset: seeking to the beginning of %s", rewind)
        # beginning_offsets + seek rather than seek_to_beginning, which waits for the
        # fetcher's next round to reset the positions (over a second).
        for tp, start in (await consumer.beginning_offsets(rewind)).items():
            consumer.seek(tp, start)
            starts[tp] = start
    return committed


class _ConsumerThread(AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek partitions to the last committed offset, including offset 0."""
        reset = str(self.app.conf.consumer_auto_offset_reset)
        internal = self.app.tables.changelog_topics | set(self.consumer.randomly_assigned_topics)
        result = await self.call_thread(
            seek_to_committed,
            self._ensure_consumer(),
            reset=reset,
            internal=internal,
            starts=getattr(self.consumer, "fetch_starts", None),  # our Consumer's
        )
        return result  # type: ignore[return-value]  # None: no committed offset, as aiokafka


class Consumer(FaustConsumer):
    """Faust's aiokafka consumer whose seek back to the committed offsets never skips, and
    whose commits of the entity topics never pass a record that was not processed."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @Service.transitions_to(CONSUMER_WAIT_EMPTY)
    async def wait_empty(self) -> None:
        """Wait until every record handed out is acked (before a rebalance gives partitions
        away, or a stop), as Faust does, but collect garbage every few seconds, not per ack.

        Faust runs a full ``gc.collect()`` and a commit each time an ack wakes it, so that
        records dropped unacked leave its weak set. With hundreds of records in flight and
        a large heap, a full soak's revocation spent 94% of the worker's CPU there, the
        lanes it waited for barely ran, and every rebalance held the group for tens of
        seconds.
        """
        started = last_gc = last_commit = last_report = time.monotonic()
        while not self.should_stop and self._unacked_messages:
            now = time.monotonic()
            if now - last_report >= WAIT_REPORT_S:
                last_report = now
                left = len(self._unacked_messages)
                log.warning("waiting %.0fs for %d records in flight to end before the "
                            "partitions are given up", now - started, left)  # fmt: skip
            if now - last_gc >= WAIT_GC_S:
                last_gc = now
                gc.collect()  # records a failed lane dropped unacked leave the weak set
            if now - last_commit >= WAIT_COMMIT_S:
                last_commit = now
                await self.commit()
            if not self._unacked_messages:
                break
            await self._wait_for_ack(timeout=1)
            self._clean_unacked_messages()
        await self.commit_and_end_transactions()

    def _entity_topic(self, topic: str) -> bool:
        config = getattr(self.app, "config", None)  # a SyncApp's; other apps: Faust's rules
        return config is not None and any(e.topic == topic for e in config.entities.values())

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit for ``tp``: Faust's for its own topics; for an entity topic,
        only over records acknowledged one after another from the committed offset."""
        if not self._entity_topic(tp.topic):
            return super()._new_offset(tp)
        acked = self._acked[tp]
        acked.sort()
        committed = self._committed_offset[tp]  # None for 0 too: then where the fetch began
        point = commit_point(self.fetch_starts.get(tp) if committed is None else committed, acked)
        self._acked_index[tp].difference_update(acked[: point.used])
        del acked[: point.used]
        self._watch_head(tp, stuck=point.offset is None and bool(acked))
        return point.offset

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust counts a jump in the fetched offsets as done; on an entity topic the jump
        comes from a seek racing the fetcher, and the records in it come again: not done."""
        if not self._entity_topic(tp.topic):
            await super()._add_gap(tp, offset_from, offset_to)

    def _watch_head(self, tp: TP, *, stuck: bool) -> None:
        """Fetch a partition again from its committed offset when that record has stayed
        unprocessed for ``HEAD_STUCK_S`` while later ones were (the fetcher dropped it)."""
        now = time.monotonic()
        since = self._head_stuck.setdefault(tp, now) if stuck else self._head_stuck.pop(tp, None)
        if not stuck or since is None or now - since < HEAD_STUCK_S:
            return
        log.warning(
            "%s[%d]: offset %s not processed for %.0fs while later ones were; fetching the "
            "partition again from it (what was done is skipped as already applied)",
            tp.topic, tp.partition, self._committed_offset[tp], now - since,
        )  # fmt: skip
        self._head_stuck[tp] = now
        self._spawn(self._seek_again())

    @functools.cached_property
    def _head_stuck(self) -> dict[TP, float]:
        return {}

    @functools.cached_property
    def fetch_starts(self) -> dict[TP, int]:
        """Where each entity partition's fetch began at the last seek to the committed
        offsets (filled by the consumer thread's seek)."""
        return {}

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        _reseeks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(_reseeks.discard)

    def resume_flow(self) -> None:
        """Resume, then seek to the committed offsets again: the resume may follow a clear
        of the agents' queues that dropped records fetched after Faust's own seek."""
        super().resume_flow()
        self._spawn(self._seek_again())

    async def _seek_again(self) -> None:
        try:
            if self.assignment():
                await self.perform_seek()
                log.debug("sought the committed offsets again after the flow resumed")
        except Exception as exc:  # stopping, or rebalancing again: that seeks anyway
            log.debug("no seek after the flow resumed: %r", exc)


class Transport(FaustTransport):
    """Faust's aiokafka transport creating :class:`Consumer` and the idempotent
    :class:`~cdcsync.streams.producer.Producer`."""

    Consumer = Consumer
    Producer = Producer


def install(app: faust.App) -> None:
    """Make ``app`` consume with :class:`Consumer` (when its broker uses the aiokafka driver)."""
    urls = app.conf.broker_consumer
    if issubclass(by_url(urls[0]), FaustTransport):
        app.transport = Transport(urls, app)
