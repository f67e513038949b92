"""The rate limiter: the bucket's schedule on a fake clock, and RestSink calling through it.

Nothing here sleeps: the clock is a counter and ``sleep`` advances it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cdcsync.errors import ConfigurationError, SinkTransientError
from cdcsync.sinks.delivery.ratelimit import (
    DEFAULT_429_PAUSE_S,
    MAX_PAUSE_S,
    WORKERS_ENV,
    RateLimiter,
    TokenBucket,
    resolve_workers,
)
from cdcsync.sinks.providers.rest import RestSettings, RestSink

TOKEN_ENV = "CDCSYNC_TEST_API_TOKEN"


class FakeClock:
    """A monotonic clock the test moves; ``sleep`` moves it by the delay asked for."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


# -- the bucket --------------------------------------------------------------------------


def test_without_a_rate_every_call_goes_at_once() -> None:
    bucket = TokenBucket(None, clock=FakeClock())
    assert [bucket.reserve() for _ in range(100)] == [0.0] * 100
    assert bucket.available() == math.inf


def test_calls_are_spaced_by_the_rate_and_keep_their_turn() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock)
    assert [round(bucket.reserve(), 6) for _ in range(4)] == [0.0, 0.1, 0.2, 0.3]
    clock.now = 0.25  # two of the four have started; the next slot is after the last reserved
    assert round(bucket.reserve(), 6) == 0.15


def test_an_idle_bucket_refills_up_to_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=3, clock=clock)
    assert bucket.available() == 3
    assert [round(bucket.reserve(), 6) for _ in range(4)] == [0.0, 0.0, 0.0, 0.1]
    assert bucket.available() == 0
    clock.now = 10.0
    assert bucket.available() == 3
    assert [round(bucket.reserve(), 6) for _ in range(4)] == [0.0, 0.0, 0.0, 0.1]


@given(
    rate=st.floats(min_value=0.5, max_value=50),
    burst=st.integers(min_value=1, max_value=5),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=80),
)
def test_no_window_holds_more_starts_than_rate_times_length_plus_burst(
    rate: float, burst: int, gaps: list[float]
) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst=burst, clock=clock)
    starts = []
    for gap in gaps:  # calls arrive at arbitrary times and start when the bucket says
        clock.now += gap
        starts.append(clock.now + bucket.reserve())
    starts.sort()
    window = 1.0
    for i, first in enumerate(starts):
        inside = sum(1 for s in starts[i:] if s < first + window - 1e-9)
        assert inside <= math.floor(window * rate) + burst


def test_a_pause_holds_every_slot_then_resumes_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=5, clock=clock)
    assert bucket.pause(2.0) == 2.0
    assert bucket.paused_for() == 2.0 and bucket.available() == 0
    # After the pause calls resume one interval apart, not in a burst of five.
    assert [round(bucket.reserve(), 6) for _ in range(3)] == [2.0, 2.1, 2.2]
    clock.now = 5.0
    assert bucket.paused_for() == 0.0


def test_a_pause_without_a_rate_still_holds_calls() -> None:
    clock = FakeClock()
    bucket = TokenBucket(None, clock=clock)
    bucket.pause(1.5)
    assert bucket.reserve() == 1.5
    clock.now = 2.0
    assert bucket.reserve() == 0.0


def test_a_shorter_pause_does_not_cut_a_longer_one_and_pauses_are_capped() -> None:
    clock = FakeClock()
    bucket = TokenBucket(None, clock=clock)
    bucket.pause(5.0)
    bucket.pause(1.0)
    assert bucket.paused_for() == 5.0
    assert bucket.pause(-3) == 0.0
    assert bucket.pause(10_000) == MAX_PAUSE_S
    assert bucket.paused_for() == MAX_PAUSE_S


@pytest.mark.parametrize("rate", [0, -1, math.nan, math.inf])
def test_a_rate_must_be_a_positive_number(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate)


def test_a_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1, burst=0.5)


# -- several workers ---------------------------------------------------------------------


def test_workers_come_from_the_setting_then_the_environment_then_default_to_one() -> None:
    assert resolve_workers(3, {WORKERS_ENV: "5"}) == 3
    assert resolve_workers(None, {WORKERS_ENV: " 5 "}) == 5
    assert resolve_workers(None, {}) == 1
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ConfigurationError, match=WORKERS_ENV):
            resolve_workers(None, {WORKERS_ENV: bad})


def test_each_worker_takes_an_equal_share_of_the_budget() -> None:
    limiter = RateLimiter.for_worker(rate_limit_rps=10, max_concurrency=8, workers=4)
    assert limiter.bucket.rate == 2.5 and limiter.max_concurrency == 2
    alone = RateLimiter.for_worker(rate_limit_rps=None, max_concurrency=None)
    assert alone.bucket.rate is None and alone.max_concurrency is None and not alone.limited


def test_fewer_concurrent_calls_than_workers_still_leaves_one_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="cdcsync.sinks.delivery.ratelimit"):
        limiter = RateLimiter.for_worker(rate_limit_rps=None, max_concurrency=2, workers=4)
    assert limiter.max_concurrency == 1
    assert "up to 4 calls" in caplog.text


# -- the async limiter -------------------------------------------------------------------


async def test_slots_start_one_interval_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=4, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(4):
        async with limiter.slot():
            starts.append(clock.now)
    assert starts == [0.0, 0.25, 0.5, 0.75]
    assert limiter.waited_s == pytest.approx(0.75)


async def test_a_caller_already_waiting_when_a_429_pauses_the_bucket_waits_it_out() -> None:
    clock = FakeClock()
    limiter: RateLimiter

    async def sleep_while_a_429_arrives(seconds: float) -> None:
        if not clock.sleeps:
            limiter.pause(3.0)  # another call got a 429 while this one waited for its slot
        await clock.sleep(seconds)

    limiter = RateLimiter(rate=2, clock=clock, sleep=sleep_while_a_429_arrives)
    async with limiter.slot():
        assert clock.now == 0.0
    async with limiter.slot():  # reserved the slot at 0.5, then the pause came
        started = clock.now
    assert started == pytest.approx(3.0)
    assert limiter.pauses == 1


async def test_no_more_calls_in_flight_than_max_concurrency() -> None:
    limiter = RateLimiter(max_concurrency=2)
    gate = asyncio.Event()
    in_flight = peak = 0

    async def call() -> None:
        nonlocal in_flight, peak
        async with limiter.slot():
            in_flight += 1
            peak = max(peak, in_flight)
            await gate.wait()
            in_flight -= 1

    tasks = [asyncio.create_task(call()) for _ in range(6)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert in_flight == 2
    gate.set()
    await asyncio.gather(*tasks)
    assert peak == 2 and in_flight == 0


# -- RestSink calls through it -----------------------------------------------------------


def _sink(
    handler: Callable[[httpx.Request], Any],
    *,
    limiter: RateLimiter | None = None,
    environ: dict[str, str] | None = None,
    **settings: Any,
) -> RestSink:
    config = RestSettings(
        base_url="https://crm.example.com",
        collection_path="/api/v1/contacts",
        object_type="contact",
        token_env=TOKEN_ENV,
        **settings,
    )
    return RestSink(
        config,
        transport=httpx.MockTransport(handler),
        environ={TOKEN_ENV: "t0ken", **(environ or {})},
        limiter=limiter,
    )


def _record(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"id": request.url.path.rsplit("/", 1)[-1], "rowId": "1"})


def test_rest_settings_build_this_workers_share() -> None:
    env = {WORKERS_ENV: "4"}
    sink = _sink(_record, environ=env, rate_limit_rps=10, max_concurrency=8)
    assert sink.limiter.bucket.rate == 2.5 and sink.limiter.max_concurrency == 2
    explicit = _sink(_record, environ=env, rate_limit_rps=10, workers=2)
    assert explicit.limiter.bucket.rate == 5
    unlimited = _sink(_record)
    assert not unlimited.limiter.limited
    for bad in ({"rate_limit_rps": 0}, {"max_concurrency": 0}, {"workers": 0}):
        with pytest.raises(ValidationError):
            _sink(_record, **bad)


async def test_a_429_pauses_every_later_call_for_its_retry_after() -> None:
    clock = FakeClock()
    seen_at: list[tuple[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen_at.append((request.url.path, clock.now))
        if len(seen_at) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "slow down"})
        return _record(request)

    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    async with aclosing(_sink(handler, limiter=limiter)) as sink:
        with pytest.raises(SinkTransientError) as caught:
            await sink.get("a")
        assert caught.value.retry_after == 7
        await sink.get("b")  # another entity's call: held by the same pause
    assert seen_at == [("/api/v1/contacts/a", 0.0), ("/api/v1/contacts/b", 7.0)]


@pytest.mark.parametrize(
    ("status", "headers", "pause"),
    [
        (429, {}, DEFAULT_429_PAUSE_S),  # a bare 429 still means "slow down"
        (503, {"Retry-After": "2"}, 2.0),
        (503, {}, 0.0),  # an outage without advice: only the failed call backs off
        (500, {}, 0.0),
    ],
)
async def test_which_answers_pause_the_sink(
    status: int, headers: dict[str, str], pause: float
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    sink = _sink(lambda _r: httpx.Response(status, headers=headers), limiter=limiter)
    async with aclosing(sink):
        with pytest.raises(SinkTransientError):
            await sink.get("a")
    assert limiter.bucket.paused_for() == pause


async def test_the_sink_keeps_calls_in_flight_under_max_concurrency() -> None:
    gate = asyncio.Event()
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await gate.wait()
        in_flight -= 1
        return _record(request)

    async with aclosing(_sink(handler, max_concurrency=3)) as sink:
        tasks = [asyncio.create_task(sink.get(str(i))) for i in range(8)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert in_flight == 3
        gate.set()
        records = await asyncio.gather(*tasks)
    assert peak == 3 and sorted(r.id for r in records if r) == [str(i) for i in range(8)]
