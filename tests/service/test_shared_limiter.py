"""Fair sharing of one endpoint's rate among studies, on a fake clock (no test here sleeps)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from engine.llm.endpoint import EndpointConfig
from engine.llm.pacing.clock import FakeClock
from engine.llm.pacing.fair_share import EndpointKey, FairShareLimiter, SharedEndpoints
from tests.llm.test_limiter import advance_to, settle

pytestmark = pytest.mark.anyio


def endpoint(**changes: object) -> EndpointConfig:
    settings: dict[str, object] = {
        "name": "target",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "sim-1",
        "requests_per_minute": 600.0,  # 10 per second
        "concurrency": 64,
    }
    settings.update(changes)
    return EndpointConfig(**settings)  # type: ignore[arg-type]


async def run_for(clock: FakeClock, seconds: float) -> None:
    await advance_to(clock, clock.time() + seconds)


class Callers:
    """`count` tasks per study, each taking permits in a loop (released at once, so only the
    rate limits hold them back); admissions are counted per study."""

    def __init__(self) -> None:
        self.admitted: Counter[str] = Counter()
        self.tasks: dict[str, list[asyncio.Task[None]]] = {}

    def start(self, name: str, limiter: FairShareLimiter, count: int) -> None:
        async def call() -> None:
            while True:
                permit = await limiter.acquire(10, output_tokens=5)
                self.admitted[name] += 1
                permit.reconcile(4, 2)
                permit.release()

        self.tasks.setdefault(name, []).extend(asyncio.ensure_future(call()) for _ in range(count))

    async def stop(self, name: str) -> None:
        for task in self.tasks.pop(name, []):
            task.cancel()
        await settle()

    async def stop_all(self) -> None:
        for name in list(self.tasks):
            await self.stop(name)


async def test_busy_studies_get_equal_shares_whatever_their_concurrency() -> None:
    clock = FakeClock(100.0)
    shared = SharedEndpoints(clock=clock)
    a = shared.limiter_for(endpoint())
    b = shared.limiter_for(endpoint())
    assert a.endpoint is b.endpoint
    callers = Callers()
    callers.start("a", a, 32)  # many workers
    callers.start("b", b, 2)  # few workers: still half the rate
    await run_for(clock, 1.0)  # past the initial burst
    before = Counter(callers.admitted)
    await run_for(clock, 20.0)
    got = {name: callers.admitted[name] - before[name] for name in ("a", "b")}
    assert sum(got.values()) == pytest.approx(200, abs=2)  # the endpoint's 10/s, all used
    assert got["a"] == pytest.approx(100, abs=2)
    assert got["b"] == pytest.approx(100, abs=2)
    assert a.admitted + b.admitted == sum(callers.admitted.values())
    await callers.stop_all()


async def test_an_idle_study_leaves_its_share_to_the_other() -> None:
    clock = FakeClock(100.0)
    shared = SharedEndpoints(clock=clock)
    a = shared.limiter_for(endpoint())
    b = shared.limiter_for(endpoint())
    callers = Callers()
    callers.start("a", a, 8)
    callers.start("b", b, 8)
    await run_for(clock, 10.0)
    await callers.stop("b")  # b pauses: nothing of it waits
    before = callers.admitted["a"]
    await run_for(clock, 10.0)
    assert callers.admitted["a"] - before == pytest.approx(100, abs=2)  # the whole 10/s
    callers.start("b", b, 8)  # b comes back: halves again
    await run_for(clock, 0.5)
    before_a, before_b = callers.admitted["a"], callers.admitted["b"]
    await run_for(clock, 10.0)
    assert callers.admitted["a"] - before_a == pytest.approx(50, abs=2)
    assert callers.admitted["b"] - before_b == pytest.approx(50, abs=2)
    await callers.stop_all()


async def test_a_study_cap_holds_it_below_its_share_and_the_rest_goes_to_the_other() -> None:
    clock = FakeClock(100.0)
    shared = SharedEndpoints(clock=clock)
    a = shared.limiter_for(endpoint())
    b = shared.limiter_for(endpoint())
    a.reconfigure(requests_per_minute=120.0)  # what Study.set_rate_limits calls: 2/s
    callers = Callers()
    callers.start("a", a, 8)
    callers.start("b", b, 8)
    await run_for(clock, 1.0)
    before = Counter(callers.admitted)
    await run_for(clock, 20.0)
    assert callers.admitted["a"] - before["a"] == pytest.approx(40, abs=2)
    assert callers.admitted["b"] - before["b"] == pytest.approx(160, abs=3)
    reading = a.reading()
    assert reading.requests_per_minute == pytest.approx(120.0)  # the study's effective limit
    assert b.reading().requests_per_minute == pytest.approx(600.0)
    await callers.stop_all()


async def test_concurrency_is_per_study_and_a_full_study_does_not_hold_the_turn() -> None:
    clock = FakeClock(100.0)
    shared = SharedEndpoints(clock=clock)
    a = shared.limiter_for(endpoint(requests_per_minute=None, concurrency=2))
    b = shared.limiter_for(endpoint(requests_per_minute=None, concurrency=3))
    held_a = [await a.acquire(1), await a.acquire(1)]
    waiting_a = asyncio.ensure_future(a.acquire(1))
    await settle()
    assert not waiting_a.done()  # a is at its concurrency
    held_b = [await b.acquire(1) for _ in range(3)]  # b is not held up by a
    assert a.reading().in_flight == 2 and b.reading().in_flight == 3
    held_a[0].release()
    await settle()
    assert waiting_a.done()
    for permit in [*held_a, *held_b, waiting_a.result()]:
        permit.release()
    assert shared.endpoints[EndpointKey.of(endpoint())].limiter.in_flight == 0


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    clock = FakeClock(100.0)
    shared = SharedEndpoints(clock=clock)
    a = shared.limiter_for(endpoint(requests_per_minute=60.0))
    b = shared.limiter_for(endpoint(requests_per_minute=60.0))
    first = await a.acquire(1)  # takes the burst
    first.release()
    blocked = asyncio.ensure_future(a.acquire(1))  # holds the turn, waits for a refill
    queued = asyncio.ensure_future(b.acquire(1))  # waits for the turn
    await settle()
    blocked.cancel()
    await settle()
    assert blocked.cancelled()
    await run_for(clock, 1.5)
    assert queued.done()
    queued.result().release()
    assert a.reading().in_flight == 0 and a.reading().waiters == 0


async def test_the_endpoint_limit_is_the_lowest_declared_and_forgotten_with_its_last_study() -> (
    None
):
    shared = SharedEndpoints(clock=FakeClock())
    a = shared.limiter_for(endpoint(requests_per_minute=600.0, tokens_per_minute=None))
    b = shared.limiter_for(endpoint(requests_per_minute=300.0, tokens_per_minute=60_000.0))
    other = shared.limiter_for(endpoint(model="sim-2"))  # another model: another endpoint
    assert other.endpoint is not a.endpoint
    reading = a.endpoint.limiter.reading()
    assert reading.requests_per_minute == pytest.approx(300.0)
    assert reading.tokens_per_minute == pytest.approx(60_000.0)
    shared.release([a, b])
    assert EndpointKey.of(endpoint()) not in shared.endpoints
    c = shared.limiter_for(endpoint(requests_per_minute=900.0))
    assert c.endpoint.limiter.reading().requests_per_minute == pytest.approx(900.0)


async def test_server_feedback_goes_to_the_endpoint_buckets() -> None:
    clock = FakeClock(100.0)
    shared = SharedEndpoints(clock=clock)
    a = shared.limiter_for(endpoint())
    b = shared.limiter_for(endpoint())
    a.on_rate_limited(2.0)  # a's 429 pauses b as well: the server limits the endpoint
    assert b.reading().paused_s == pytest.approx(2.0)
    waiting = asyncio.ensure_future(b.acquire(1))
    await run_for(clock, 1.0)
    assert not waiting.done()
    await run_for(clock, 1.5)
    assert waiting.done()
    waiting.result().release()
