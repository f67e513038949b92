"""Client-side rate limiting of one external API: requests per second and requests in flight.

External APIs publish budgets ("10 requests per second, 4 concurrent") and answer
429 with ``Retry-After`` beyond them. :class:`RateLimiter` keeps a sink inside its
budget: an ``asyncio.Semaphore`` bounds the calls in flight and a
:class:`TokenBucket` spaces their starts. The bucket is pure logic over an
injectable clock, so its schedule is tested without sleeping.

A 429 (or a 503 with ``Retry-After``) pauses the whole bucket, not just the call
that got it: every concurrent call to that API backs off together, including calls
already waiting for a slot, and after the pause calls resume at the configured rate
instead of all at once.

Several workers
---------------
Each worker process limits only its own calls; nothing is shared between them. With
``workers`` set (or ``$CDCSYNC_WORKERS``), each worker takes an equal static share,
``rate_limit_rps / workers`` and ``max_concurrency // workers`` (at least 1), so the
API never sees more than the configured totals while at most ``workers`` workers run.
This is the usual static split: no shared store, no coordination, and no failure mode
of its own. Its costs: set ``workers`` to the most workers you ever run at once (more
workers than that exceed the budget, fewer leave part of it unused), and a worker
whose partitions carry more traffic than the others cannot borrow their unused share.
The limit belongs to one configured target: two entities on the same API each get
their own limiter, so split the API's budget between their targets.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from cdcsync.errors import ConfigurationError

__all__ = [
    "MAX_PAUSE_S",
    "WORKERS_ENV",
    "RateLimiter",
    "TokenBucket",
    "parse_retry_after",
    "resolve_workers",
]

log = logging.getLogger(__name__)

#: The environment variable telling each worker how many workers share the budget.
WORKERS_ENV = "CDCSYNC_WORKERS"
#: Longest pause a ``Retry-After`` can impose on the whole sink; longer asks are capped
#: so one odd header cannot stall every entity of the target for hours.
MAX_PAUSE_S = 60.0
#: Pause after a 429 that does not say how long to wait.
DEFAULT_429_PAUSE_S = 1.0
#: Timer slack: a sleep may end this much before its deadline.
_EPSILON_S = 1e-3

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay seconds or HTTP date), or ``None``."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class TokenBucket:
    """A token bucket in its virtual-scheduling form (GCRA): pure, over an injectable clock.

    ``rate`` tokens per second refill a bucket holding ``burst`` tokens; each call
    :meth:`reserve` s one and learns how long to wait before using it. Reservations
    are handed out in call order, so waiting callers keep their turn. ``rate=None``
    limits nothing but still honours :meth:`pause`.
    """

    def __init__(
        self, rate: float | None, *, burst: float = 1.0, clock: Clock = time.monotonic
    ) -> None:
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of requests per second, not {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._interval = 0.0 if rate is None else 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        #: Theoretical arrival time: when the bucket is next "empty" for a conforming call.
        self._tat = -math.inf
        self._paused_until = -math.inf

    def reserve(self) -> float:
        """Take the next slot; the seconds to wait before starting the call (0: go now)."""
        now = self._clock()
        start = max(now, self._paused_until)
        if self.rate is not None:
            start = max(start, self._tat - self._tolerance)
            self._tat = max(self._tat, start) + self._interval
        return start - now

    def pause(self, seconds: float) -> float:
        """Give no slot for ``seconds`` (capped at ``MAX_PAUSE_S``); returns the pause applied.

        Calls after the pause resume one interval apart, not all at once.
        """
        seconds = min(max(seconds, 0.0), MAX_PAUSE_S)
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until
            # The first call after the pause goes at ``until``, the next one interval later.
            self._tat = max(self._tat, until + self._tolerance)
        return seconds

    def paused_for(self) -> float:
        """Seconds left of the current pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def available(self) -> float:
        """Tokens in the bucket now (``inf`` without a rate); for tests and metrics."""
        if self.rate is None:
            return math.inf
        now = self._clock()
        if now < self._paused_until:
            return 0.0
        refilled = (now + self._tolerance + self._interval - self._tat) * self.rate
        return max(0.0, min(self.burst, refilled))


def resolve_workers(configured: int | None, environ: Mapping[str, str] | None = None) -> int:
    """How many workers share a budget: the setting, else ``$CDCSYNC_WORKERS``, else 1."""
    if configured is not None:
        return configured
    raw = (os.environ if environ is None else environ).get(WORKERS_ENV, "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(
            f"{WORKERS_ENV}={raw!r}: must be a whole number of workers, at least 1"
        )
    return value


class RateLimiter:
    """Requests per second and in flight for one sink, with a pause all its calls share.

    Use ``async with limiter.slot(): <one HTTP call>``; call :meth:`pause` with a
    429's ``Retry-After``. The limits given are this worker's own; :meth:`for_worker`
    derives them from an API's total budget and the number of workers.
    """

    def __init__(
        self,
        *,
        rate: float | None = None,
        max_concurrency: int | None = None,
        burst: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.bucket = TokenBucket(rate, burst=burst, clock=clock)
        self.max_concurrency = max_concurrency
        self._semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._sleep = sleep
        #: Seconds callers spent waiting for the rate or a pause, and pauses applied.
        self.waited_s = 0.0
        self.pauses = 0

    @classmethod
    def for_worker(
        cls,
        *,
        rate_limit_rps: float | None,
        max_concurrency: int | None,
        workers: int = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> RateLimiter:
        """This worker's limiter: an equal static share of the API's total budget."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        rate = None if rate_limit_rps is None else rate_limit_rps / workers
        concurrency = None
        if max_concurrency is not None:
            concurrency = max(1, max_concurrency // workers)
            if max_concurrency < workers:
                log.warning(
                    "max_concurrency=%d is less than workers=%d: each worker still needs one "
                    "call in flight, so up to %d calls may run at once",
                    max_concurrency, workers, workers,
                )  # fmt: skip
        return cls(rate=rate, max_concurrency=concurrency, clock=clock, sleep=sleep)

    @property
    def limited(self) -> bool:
        """True when a rate or a concurrency limit is configured."""
        return self.bucket.rate is not None or self._semaphore is not None

    def pause(self, seconds: float) -> float:
        """Hold every call of this sink for ``seconds`` (capped); returns the pause applied."""
        applied = self.bucket.pause(seconds)
        self.pauses += 1
        log.info("rate limiter: the API asked to back off; pausing calls for %.2fs", applied)
        return applied

    async def _wait_turn(self) -> None:
        # Bounded: each round either starts the call or waits out a pause that ends.
        while True:
            delay = self.bucket.reserve()
            if delay > 0:
                self.waited_s += delay
                await self._sleep(delay)
            if self.bucket.paused_for() <= _EPSILON_S:
                return
            # A 429 paused the bucket while we waited: our slot fell inside the pause.

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a concurrency slot and a rate slot; the call runs inside the block."""
        if self._semaphore is None:
            await self._wait_turn()
            yield
            return
        async with self._semaphore:
            await self._wait_turn()
            yield
