"""Key-ordered concurrency: the records of one key in order, other keys never wait for them.

The pattern of Confluent's Parallel Consumer. Each key has a lane, a task that
runs its queued records in order; a record of another key goes to its own lane
at once, so one slow call holds only its own entity. A lane takes everything
queued for its key in one step (consecutive updates then coalesce), and acks
those records when the step has ended them and their results are delivered.
The worker commits a partition only up to its first record not acked
(``streams.commits``), so a crash replays from the lowest unfinished record and
the state's "already applied" check skips what was done.

The partition stays the entity's lock: a key has at most one lane, and Faust
waits for every record it handed out to be acked before it gives a partition
to another worker (``stream_wait_empty``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from cdcsync import metrics

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "STALL_REPORT_S", "KeyedPipeline"]

log = logging.getLogger(__name__)

#: Records taken from one partition and not yet acked, at most.
DEFAULT_MAX_IN_FLIGHT = 500
#: A full partition waiting this long logs the lanes holding it and where each waits.
STALL_REPORT_S = 30.0


#: Runs the records of one key, in order, and returns once they ended and are delivered.
RunKey = Callable[[list[Any]], Awaitable[None]]
#: Marks one record done so its offset may be committed (drops its last reference).
Ack = Callable[[Any], Awaitable[Any]]


class KeyedPipeline:
    """Records handed in by :meth:`put`, run per key in order, acked when they ended."""

    def __init__(
        self,
        run_key: RunKey,
        ack: Ack,
        *,
        entity: str = "",
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        stall_report_s: float = STALL_REPORT_S,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, not {max_in_flight}")
        self._run_key = run_key
        self._ack = ack
        self._entity = entity
        self._max_in_flight = max_in_flight
        self._lanes: dict[Hashable, list[Any]] = {}
        self._room: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._in_flight = 0
        self._stall_report_s = stall_report_s
        #: key -> (when its current step started, its records, its lane task)
        self._steps: dict[Hashable, tuple[float, list[Any], asyncio.Task[Any] | None]] = {}

    @property
    def in_flight(self) -> int:
        """Records handed in and not yet acked."""
        return self._in_flight

    async def put(self, event: Any) -> None:
        """Queue ``event`` behind the earlier records of its key; wait while its partition
        already has ``max_in_flight`` unfinished records. Raises a lane's failure."""
        self._raise_failure()
        room = self._room_of(event)
        while room.locked():  # full: wait, and say what holds it instead of going quiet
            try:
                await asyncio.wait_for(room.acquire(), self._stall_report_s)
                break
            except TimeoutError:
                self._report_stalls(event)
        else:
            await room.acquire()  # free: no wait, no task
        self._raise_failure()
        self._in_flight += 1
        metrics.set_in_flight(self._entity, self._in_flight)
        lane = self._lanes.get(event.key)
        if lane is not None:
            lane.append(event)  # its lane takes it when the current step ends
            return
        self._lanes[event.key] = [event]
        task = asyncio.create_task(self._lane(event.key), name=f"lane {self._entity}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def join(self) -> None:
        """Wait until every lane is idle; raise a lane's failure."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._raise_failure()

    def close(self) -> None:
        """Stop every lane: what they did not ack comes again (a restart or a rebalance)."""
        for task in list(self._tasks):
            task.cancel()

    # -- lanes ---------------------------------------------------------------------------

    async def _lane(self, key: Hashable) -> None:
        queue = self._lanes[key]
        try:
            while queue:
                step = queue[:]
                queue.clear()
                self._steps[key] = (time.monotonic(), step, asyncio.current_task())
                await self._run_key(step)
                for event in step:
                    await self._ack(event)
                    self._done(event)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a lost delivery: leave its records unacked
            log.error("%s: a lane stopped; its records stay unacked: %r", self._entity, exc)
            if self._failure is None:
                self._failure = exc
        finally:
            del self._lanes[key]  # unacked records dropped: Faust forgets them (weak set)
            self._steps.pop(key, None)

    def stalled(self, older_than_s: float) -> list[str]:
        """The steps running for longer than ``older_than_s``: key, records, age, and where
        the lane waits (its innermost frames), oldest first."""
        now, found = time.monotonic(), []
        for key, (started, step, task) in sorted(self._steps.items(), key=lambda i: i[1][0]):
            if now - started < older_than_s:
                continue
            first = step[0].message
            frames = _awaiting(task.get_coro()) if task is not None else []
            where = " <- ".join(
                f"{f.f_code.co_name} ({f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno})"
                for f in reversed(frames[-3:])
            )
            found.append(
                f"key {key!r}: {len(step)} record(s) from {first.topic}[{first.partition}]"
                f"@{first.offset}, running {now - started:.0f}s, waiting in {where or '?'}"
            )
        return found

    def _report_stalls(self, event: Any) -> None:
        msg = event.message
        lanes = self.stalled(self._stall_report_s)
        log.warning(
            "%s: partition %s[%d] has had %d records in flight for %.0fs; the oldest steps: %s",
            self._entity,
            msg.topic,
            msg.partition,
            self._max_in_flight,
            self._stall_report_s,
            "; ".join(lanes[:5]) or "none older than that (records are ending slowly)",
        )

    def _room_of(self, event: Any) -> asyncio.Semaphore:
        tp = (event.message.topic, event.message.partition)
        room = self._room.get(tp)
        if room is None:
            room = self._room[tp] = asyncio.Semaphore(self._max_in_flight)
        return room

    def _done(self, event: Any) -> None:
        self._room_of(event).release()
        self._in_flight -= 1
        metrics.set_in_flight(self._entity, self._in_flight)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure


def _awaiting(coro: Any) -> list[Any]:
    """The frames of a suspended coroutine and of what it awaits, outermost first."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames
