"""The limiter's arithmetic and fairness on a fake clock: no test here sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.llm.pacing.clock import FakeClock
from engine.llm.pacing.headers import BucketHint
from engine.llm.pacing.limiter import AimdSettings, Permit, RateLimiter, TokenBucket


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def advance_to(clock: FakeClock, target: float) -> None:
    """Fire due timers one by one, letting woken tasks run between them."""
    while True:
        deadline = clock.next_deadline()
        if deadline is None or deadline > target:
            break
        clock.advance(max(0.0, deadline - clock.time()))
        await settle()
    clock.advance(max(0.0, target - clock.time()))
    await settle()


async def run_until_done(clock: FakeClock, tasks: Sequence[asyncio.Task[None]]) -> None:
    for _ in range(100_000):
        if all(task.done() for task in tasks):
            return
        deadline = clock.next_deadline()
        assert deadline is not None, "waiters left with no timer set: they would never wake"
        await advance_to(clock, deadline)
    raise AssertionError("did not finish")


def test_bucket_refills_at_rate_up_to_capacity() -> None:
    bucket = TokenBucket("requests", rate_per_s=2.0, capacity=4.0, now=0.0)
    bucket.level = 0.0
    bucket.refill(1.0)
    assert bucket.level == pytest.approx(2.0)
    bucket.refill(10.0)
    assert bucket.level == 4.0
    assert bucket.wait_s(3, 10.0) == 0.0
    bucket.level = 1.0
    assert bucket.wait_s(3, 10.0) == pytest.approx(1.0)
    # more than the capacity: wait for a full bucket, then go into debt
    assert bucket.wait_s(10, 10.0) == pytest.approx(1.5)


@pytest.mark.anyio
async def test_requests_per_minute_spaces_admissions() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, burst_s=1.0, clock=clock)
    times: list[float] = []

    async def one() -> None:
        permit = await limiter.acquire()
        times.append(clock.time())
        permit.release()

    tasks = [asyncio.create_task(one()) for _ in range(5)]
    await settle()
    await run_until_done(clock, tasks)
    assert times == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])


@pytest.mark.anyio
async def test_tokens_bucket_and_reconcile_refund() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tokens_per_minute=600, burst_s=1.0, clock=clock)  # 10 tokens/s
    first = await limiter.acquire(10)
    assert limiter.try_acquire(5) is None
    first.reconcile(2, 2)  # used 4 of the 10 estimated: 6 come back
    second = limiter.try_acquire(5)
    assert second is not None
    second.reconcile(5, 5)  # used 10 instead of 5: the bucket goes into debt
    reading = limiter.reading()
    assert reading.buckets[0].level == pytest.approx(1 - 5 - 5 + 5)
    first.release()
    second.release()


@pytest.mark.anyio
async def test_fifo_fairness_big_request_is_not_starved() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tokens_per_minute=600, burst_s=1.0, clock=clock)
    (await limiter.acquire(10)).release()  # empty the bucket
    order: list[str] = []

    async def one(label: str, tokens: int) -> None:
        permit = await limiter.acquire(tokens)
        order.append(label)
        permit.release()

    tasks = [asyncio.create_task(one("big", 9))]
    await settle()
    tasks += [asyncio.create_task(one(f"small{i}", 1)) for i in range(3)]
    await settle()
    await run_until_done(clock, tasks)
    assert order == ["big", "small0", "small1", "small2"]


@pytest.mark.anyio
async def test_concurrency_cap_and_release_wakes_next() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=2, clock=clock)
    a = await limiter.acquire()
    b = await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())
    await settle()
    assert not waiting.done()
    assert limiter.reading().waiters == 1
    assert clock.next_deadline() is None  # waits on a slot, not on time: no timer
    a.release()
    await settle()
    assert waiting.done()
    waiting.result().release()
    b.release()
    assert limiter.in_flight == 0


@pytest.mark.anyio
async def test_reconfigure_keeps_waiters_and_applies_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=6, burst_s=1.0, clock=clock)  # one per 10 s
    (await limiter.acquire()).release()
    results: list[Permit] = []

    async def one() -> None:
        results.append(await limiter.acquire())

    tasks = [asyncio.create_task(one()) for _ in range(3)]
    await settle()
    assert limiter.reading().waiters == 3
    limiter.reconfigure(requests_per_minute=600)  # ten per second now
    await advance_to(clock, 0.1)
    assert len(results) == 1
    limiter.reconfigure(concurrency=1)
    await advance_to(clock, 1.0)
    assert len(results) == 1  # the cap holds the others though the bucket has room
    limiter.reconfigure(concurrency=None, requests_per_minute=None)
    await settle()
    assert len(results) == 3
    assert all(task.done() for task in tasks)


@pytest.mark.anyio
async def test_cancelled_waiter_leaves_the_queue() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, burst_s=1.0, clock=clock)
    (await limiter.acquire()).release()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await settle()
    first.cancel()
    await settle()
    await advance_to(clock, 1.0)
    assert second.done()
    assert limiter.reading().waiters == 0


def test_reconfigure_rejects_bad_values() -> None:
    limiter = RateLimiter(clock=FakeClock())
    with pytest.raises(ConfigError, match="requests_per_minute"):
        limiter.reconfigure(requests_per_minute=-1)
    with pytest.raises(ConfigError, match="concurrency"):
        limiter.reconfigure(concurrency=0)


@pytest.mark.anyio
async def test_rate_limited_pauses_for_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=6000, clock=clock)
    limiter.on_rate_limited(2.0)
    task = asyncio.create_task(limiter.acquire())
    await advance_to(clock, 1.9)
    assert not task.done()
    await advance_to(clock, 2.0)
    assert task.done()


@pytest.mark.anyio
async def test_adaptive_decreases_then_climbs_additively() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        adaptive=True, aimd=AimdSettings(start_requests_per_minute=600), clock=clock
    )
    start = limiter.reading().requests_per_minute
    assert start == 600
    # 10 successes per second for 2 s, while the limiter is the bottleneck: slow start doubles
    for step in range(20):
        await advance_to(clock, step * 0.1)
        (await limiter.acquire()).release()
        limiter._last_constrained_at = clock.time()
        limiter.on_success()
    grown = limiter.reading().requests_per_minute
    assert grown is not None
    assert grown > 600 * 2
    sent = clock.time()
    limiter.on_rate_limited(None, sent_at=sent)
    decreased = limiter.reading().requests_per_minute
    assert decreased is not None
    assert decreased <= 0.95 * 11 * 60
    limiter.on_rate_limited(None, sent_at=sent - 1)  # stale 429: no second decrease
    assert limiter.reading().requests_per_minute == decreased
    await advance_to(clock, clock.time() + 1.0)  # through the pause
    before = limiter.reading().requests_per_minute
    assert before is not None
    for _ in range(10):
        await advance_to(clock, clock.time() + 1.0)
        limiter._last_constrained_at = clock.time()
        limiter.on_success()
    after = limiter.reading().requests_per_minute
    assert after == pytest.approx(before * (1 + 0.01 * 10), rel=0.02)  # additive, 1 %/s


@pytest.mark.anyio
async def test_adaptive_429_with_nothing_accepted_keeps_searching() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        adaptive=True, aimd=AimdSettings(start_requests_per_minute=600), clock=clock
    )
    # the very first answer is a 429: the server's bucket was empty before we came
    limiter.on_rate_limited(0.1, sent_at=clock.time())
    assert limiter.reading().requests_per_minute == pytest.approx(300)
    for step in range(1, 11):  # then 1 s of successes while the limiter holds the rate back
        await advance_to(clock, 0.1 + step * 0.1)
        limiter._last_constrained_at = clock.time()
        limiter.on_success()
    rate = limiter.reading().requests_per_minute
    assert rate is not None and rate > 300 * 1.8  # still doubling (slow start), not +1 %/s


@pytest.mark.anyio
async def test_adaptive_429_below_a_burst_inflated_accepted_rate() -> None:
    clock = FakeClock()
    aimd = AimdSettings(start_requests_per_minute=600)
    limiter = RateLimiter(requests_per_minute=600, adaptive=True, aimd=aimd, clock=clock)
    limiter.reconfigure(requests_per_minute=None)  # keeps 600/min, searching from there
    for step in range(20):  # 20/s accepted for 1 s: the server's stored burst
        await advance_to(clock, step * 0.05)
        limiter.on_success()
    # refused at 10/s while 20/s were accepted: the measure is inflated, cut the current rate
    limiter.on_rate_limited(None, sent_at=clock.time())
    assert limiter.reading().requests_per_minute == pytest.approx(600 * 0.9)
    for step in range(1, 6):  # the server now takes 5/s
        await advance_to(clock, 0.95 + step * 0.2)
        limiter.on_success()
    # refused again: what was accepted since the cut (about 6/s) is the server's rate
    limiter.on_rate_limited(None, sent_at=clock.time())
    since_cut = 7 / (clock.time() - 0.9)  # the cut's 100 ms slot held two of the burst
    assert limiter.reading().requests_per_minute == pytest.approx(0.95 * since_cut * 60)
    await advance_to(clock, clock.time() + 3.0)
    for _ in range(10):  # 5/s accepted for 2 s, below the rate: 0.95 x accepted
        await advance_to(clock, clock.time() + 0.2)
        limiter.on_success()
    rate = limiter.reading().requests_per_minute
    assert rate is not None and rate > 0.95 * 5 * 60
    limiter.on_rate_limited(None, sent_at=clock.time())
    assert limiter.reading().requests_per_minute == pytest.approx(0.95 * 5 * 60, rel=0.06)


async def _cut_after_a_burst() -> tuple[FakeClock, RateLimiter]:
    """Searching from 20/s, 40/s accepted for 1 s (the server's stored burst), then a 429:
    below the burst, the current rate x 0.9."""
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=1200, adaptive=True, clock=clock)
    limiter.reconfigure(requests_per_minute=None)
    for step in range(40):
        await advance_to(clock, step * 0.025)
        limiter.on_success()
    limiter.on_rate_limited(None, sent_at=clock.time())
    assert limiter.reading().requests_per_minute == pytest.approx(1200 * 0.9)
    return clock, limiter


@pytest.mark.anyio
async def test_adaptive_429s_right_after_a_cut_use_what_was_counted_since() -> None:
    clock, limiter = await _cut_after_a_burst()
    cut_at = clock.time()
    for step in (1, 2, 3):  # the server now takes 10/s
        await advance_to(clock, cut_at + step * 0.1)
        limiter.on_success()
    await advance_to(clock, cut_at + 0.3)
    # refused again 0.3 s after the cut: too short to measure over the window, so the three
    # counted since the cut say 10/s, where another x 0.9 would leave it at 16.2/s
    limiter.on_rate_limited(None, sent_at=clock.time())
    assert limiter.reading().requests_per_minute == pytest.approx(0.95 * 10 * 60)
    await advance_to(clock, clock.time() + 0.1)
    # and once more with nothing counted since: the current rate x 0.9
    limiter.on_rate_limited(None, sent_at=clock.time())
    assert limiter.reading().requests_per_minute == pytest.approx(0.9 * 0.95 * 10 * 60)


@pytest.mark.anyio
async def test_adaptive_429s_right_after_a_cut_never_more_than_halve_it() -> None:
    clock, limiter = await _cut_after_a_burst()
    cut_at = clock.time()
    await advance_to(clock, cut_at + 0.4)
    limiter.on_success()  # one in 0.4 s: 2.5/s, too few to cut 18/s to that at once
    limiter.on_rate_limited(None, sent_at=clock.time())
    assert limiter.reading().requests_per_minute == pytest.approx(1200 * 0.9 * 0.5)


@pytest.mark.anyio
async def test_adaptive_429s_after_a_cut_do_not_reuse_the_rate_before_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=1200, adaptive=True, clock=clock)
    limiter.reconfigure(requests_per_minute=None)
    for step in range(38):  # 19/s accepted for 2 s at 20/s
        await advance_to(clock, step / 19)
        limiter.on_success()
    limiter.on_rate_limited(None, sent_at=clock.time())
    assert limiter.reading().requests_per_minute == pytest.approx(0.95 * 19 * 60, rel=0.03)
    cut_at = clock.time()
    for step in (1, 2, 3):  # the server now takes 10/s
        await advance_to(clock, cut_at + step * 0.1)
        limiter.on_success()
    # refused again: the window's mean still holds the 19/s before the cut, now a little under
    # the rate; cutting to 0.95 x that again would take a 429 per 5 % to reach 10/s
    limiter.on_rate_limited(None, sent_at=clock.time())
    assert limiter.reading().requests_per_minute == pytest.approx(0.95 * 10 * 60)


@pytest.mark.anyio
async def test_header_sync_creates_buckets_and_lowers_levels() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=100, burst_s=1.0, clock=clock)
    limiter.sync(
        [
            BucketHint("requests", 60, 0, 1.0),
            BucketHint("input_tokens", 6000, 500, None),
            BucketHint("output_tokens", 600, None, None),
        ]
    )
    reading = limiter.reading()
    names = {bucket.name: bucket for bucket in reading.buckets}
    assert names["requests"].per_minute == 60  # the server's lower limit wins
    assert names["requests"].level == 0
    assert names["input_tokens"].per_minute == 6000
    assert names["output_tokens"].capacity == 10
    assert limiter.try_acquire(5, output_tokens=5) is None  # no request left
    await advance_to(clock, 1.0)
    permit = limiter.try_acquire(20, output_tokens=5)
    assert permit is not None
    levels = {bucket.name: bucket.level for bucket in limiter.reading().buckets}
    assert levels["input_tokens"] == pytest.approx(100 - 15)
    assert levels["output_tokens"] == pytest.approx(10 - 5)


def _admissions(
    arrivals: Sequence[tuple[float, int]], rpm: float, tpm: float, burst_s: float
) -> list[tuple[float, int, int]]:
    async def main() -> list[tuple[float, int, int]]:
        clock = FakeClock()
        limiter = RateLimiter(
            requests_per_minute=rpm, tokens_per_minute=tpm, burst_s=burst_s, clock=clock
        )
        admitted: list[tuple[float, int, int]] = []

        async def one(index: int, tokens: int) -> None:
            permit = await limiter.acquire(tokens)
            admitted.append((clock.time(), index, tokens))
            permit.release()

        tasks = []
        for index, (gap, tokens) in enumerate(arrivals):
            await advance_to(clock, clock.time() + gap)
            tasks.append(asyncio.create_task(one(index, tokens)))
            await settle()
        await run_until_done(clock, tasks)
        return admitted

    return asyncio.run(main())


@settings(max_examples=60, deadline=None)
@given(
    arrivals=st.lists(st.tuples(st.floats(0, 2.0), st.integers(1, 50)), min_size=1, max_size=40),
    rpm=st.floats(6, 600),
    tpm=st.floats(600, 6000),
    burst_s=st.floats(0.5, 5.0),
)
def test_never_more_than_burst_plus_rate_times_window(
    arrivals: list[tuple[float, int]], rpm: float, tpm: float, burst_s: float
) -> None:
    admitted = _admissions(arrivals, rpm, tpm, burst_s)
    assert [index for _, index, _ in admitted] == list(range(len(arrivals)))  # FIFO
    request_rate, token_rate = rpm / 60, tpm / 60
    request_capacity = max(1.0, request_rate * burst_s)
    token_capacity = max(1.0, token_rate * burst_s)
    small = all(tokens <= token_capacity for _, tokens in arrivals)
    for i in range(len(admitted)):
        tokens = 0
        for j in range(i, len(admitted)):
            window = admitted[j][0] - admitted[i][0]
            tokens += admitted[j][2]
            assert j - i + 1 <= request_capacity + request_rate * window + 1e-6
            if small:
                assert tokens <= token_capacity + token_rate * window + 1e-6
