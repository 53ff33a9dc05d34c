"""An endpoint pool: its pacing draws on every member's limit, a call admitted at one member goes
there, a dead server's calls go to the others (a refused connection cools it at once and costs
nothing), it comes back through one probe, and members that differ in what they can do are
refused by name. Pacing runs on a fake clock; the rest against simulators on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

import pytest

from engine.errors import EndpointError
from engine.llm import (
    Capability,
    ConnectionFailedError,
    EndpointConfig,
    EndpointPool,
    LLMClient,
    RateLimiter,
    RetryPolicy,
)
from engine.llm.pacing.clock import FakeClock
from engine.llm.pacing.gate import ADMITTED, Admitted
from engine.llm.pacing.pool_limiter import PoolLimiter, first_permit
from engine.serving.protocol import Scored
from engine.sim import SimConfig, serve_sim
from engine.sim.world import World
from engine.task import load_task

pytestmark = pytest.mark.anyio

TASK = load_task("sum", seed=0)
FAST = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.005)
MESSAGES = [{"role": "user", "content": "Add the two numbers.\n\nInput: 2 3\nOutput:"}]


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def config(url: str, name: str, **options: Any) -> EndpointConfig:
    values: dict[str, Any] = {"name": name, "base_url": url, "model": "sim-1", "retry": FAST}
    values.update(options)
    return EndpointConfig(**values)


# -- pacing: a permit from whichever member admits first --------------------------------------


async def test_the_pool_limiter_draws_on_the_sum_of_the_limits() -> None:
    clock = FakeClock()
    members = [RateLimiter(requests_per_minute=60, clock=clock) for _ in range(3)]  # 1/s each
    pool = PoolLimiter(lambda: members)
    taken: list[RateLimiter] = []

    async def take(count: int) -> None:
        for _ in range(count):
            permit = await pool.acquire()
            taken.append(permit.limiter)
            permit.release()

    task = asyncio.ensure_future(take(30))
    await settle()
    while not task.done():  # from one timer to the next
        deadline = clock.next_deadline()
        assert deadline is not None, "a waiter with no timer set would never wake"
        clock.advance(max(0.0, deadline - clock.time()))
        await settle()
    # one burst of 1 each at the start, then 3 a second: 30 permits take about 9 s, not 29 s
    assert clock.time() == pytest.approx(9.0, abs=0.5)
    assert [taken.count(member) for member in members] == [10, 10, 10]
    assert pool.reading().requests_per_minute == pytest.approx(180.0)


async def test_a_waiter_cancelled_or_beaten_leaves_nothing_taken() -> None:
    clock = FakeClock()
    members = [RateLimiter(requests_per_minute=60, clock=clock) for _ in range(2)]
    for member in members:
        member.try_acquire().release()  # both buckets empty: the next permit is a second away
    waiting = asyncio.ensure_future(first_permit(members, 0, 0))
    await settle()
    assert [member.waiters for member in members] == [1, 1]
    waiting.cancel()
    await settle()
    assert [member.waiters for member in members] == [0, 0]
    clock.advance(1.0)
    # both can admit now, and were not charged for the cancelled wait
    assert all(member.try_acquire() is not None for member in members)
    clock.advance(1.0)
    won = await first_permit(members, 0, 0)  # both admit at once: one wins, one is refunded
    await settle()
    loser = members[1] if won.limiter is members[0] else members[0]
    assert loser.in_flight == 1  # only the permit taken above, not the refunded one
    assert loser.try_acquire() is not None


# -- routing and failover against simulators ----------------------------------------------------


async def test_a_call_admitted_at_one_endpoint_goes_there() -> None:
    async with (
        serve_sim(SimConfig(tasks=(TASK,))) as one,
        serve_sim(SimConfig(tasks=(TASK,))) as two,
        LLMClient(config(one.base_url, "a")) as a,
        LLMClient(config(two.base_url, "b")) as b,
    ):
        pool = EndpointPool([a, b], role="target")
        permit = b.limiter.try_acquire()
        assert permit is not None
        admitted = Admitted(permit)
        ADMITTED.set(admitted)
        answer = await pool.chat(MESSAGES, max_tokens=4)
        ADMITTED.set(None)
        assert answer.endpoint == "b" and admitted.taken
        assert b.limiter.in_flight == 0  # the client used the permit and gave it back
        assert (a.stats().calls, b.stats().calls) == (0, 1)


class _NoEcho(World):
    """A llama.cpp-like server: `echo` gives back the generated tokens' log-probs only."""

    async def prompt_logprobs(self, prompt: str, top: int) -> Sequence[Scored]:
        return ()


async def test_endpoints_that_differ_in_what_they_can_do_are_refused_by_name() -> None:
    config_ = SimConfig(tasks=(TASK,))
    async with (
        serve_sim(config_) as full,
        serve_sim(config_, backend=_NoEcho([TASK], config_)) as partial,
        LLMClient(config(full.base_url, "vllm")) as a,
        LLMClient(config(partial.base_url, "llamacpp")) as b,
    ):
        pool = EndpointPool([a, b], role="target")
        with pytest.raises(EndpointError) as refused:
            await pool.same(Capability.PROMPT_LOGPROBS)
        message = str(refused.value)
        assert "'vllm' serves prompt logprobs, 'llamacpp' does not" in message
        assert refused.value.endpoint == "llamacpp"
        assert not (await pool.capabilities()).prompt_logprobs  # what every one can do
        await pool.same(Capability.CHAT)  # alike in this


async def test_a_dead_server_is_cooled_its_calls_go_elsewhere_and_it_comes_back() -> None:
    now = [0.0]
    port = free_port()  # nothing listens there yet: a connection is refused
    async with (
        serve_sim(SimConfig(tasks=(TASK,), latency_base_s=0.01)) as alive,
        LLMClient(config(f"http://127.0.0.1:{port}/v1", "dead")) as dead,
        LLMClient(config(alive.base_url, "alive")) as other,
    ):
        pool = EndpointPool([dead, other], role="target", cooldown_s=10, time_s=lambda: now[0])
        answers = await asyncio.gather(*(pool.chat(MESSAGES, max_tokens=4) for _ in range(20)))
        assert {answer.endpoint for answer in answers} == {"alive"}
        reading = {r.name: r for r in pool.readings()}["dead"]
        # refused at once on the first call (no retry on it: the client handed it over), and
        # skipped from then on; nothing was sent, so nothing may have been paid twice
        assert reading.state == "cooled" and reading.resent == 0
        assert 1 <= reading.failed_over == dead.stats().failed and dead.stats().attempts <= 20
        assert pool.cooling()["dead"] == pytest.approx(10.0)
        async with serve_sim(SimConfig(tasks=(TASK,)), port=port) as back:
            now[0] = 11.0  # the cool-down is over: one call tests the server, and it answers
            assert pool.readings()[0].state == "probing"
            answer = await pool.chat(MESSAGES, max_tokens=4)
            assert answer.endpoint == "dead" and pool.readings()[0].state == "ok"
            answers = await asyncio.gather(*(pool.chat(MESSAGES, max_tokens=4) for _ in range(8)))
            assert {answer.endpoint for answer in answers} == {"dead", "alive"}
            assert back.stats()["requests"] >= 2


async def test_one_probe_at_a_time_after_a_cool_down() -> None:
    now = [0.0]
    async with (
        serve_sim(SimConfig(tasks=(TASK,), latency_base_s=0.2)) as slow,
        serve_sim(SimConfig(tasks=(TASK,))) as fast,
        LLMClient(config(slow.base_url, "slow")) as a,
        LLMClient(config(fast.base_url, "fast")) as b,
    ):
        pool = EndpointPool([a, b], role="target", cooldown_s=5, time_s=lambda: now[0])
        pool._failed(a, ConnectionFailedError("refused", sent=False, retryable=True), False)
        assert pool.cooling() == {"slow": 5.0}
        now[0] = 6.0
        answers = await asyncio.gather(*(pool.chat(MESSAGES, max_tokens=4) for _ in range(6)))
        # the slow endpoint took only its probe while the probe was in flight
        assert [answer.endpoint for answer in answers].count("slow") == 1
        assert pool.readings()[0].state == "ok"


async def test_every_endpoint_down_fails_the_call_after_backing_off() -> None:
    ports = [free_port(), free_port()]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with (
        LLMClient(config(f"http://127.0.0.1:{ports[0]}/v1", "a")) as a,
        LLMClient(config(f"http://127.0.0.1:{ports[1]}/v1", "b")) as b,
    ):
        pool = EndpointPool([a, b], role="target", retry=FAST, sleep=sleep)
        with pytest.raises(ConnectionFailedError) as failed:
            await pool.chat(MESSAGES, max_tokens=4)
        assert failed.value.sent is False
        # each round tries every endpoint once; FAST allows 3 rounds, 2 waits between them
        assert (a.stats().attempts, b.stats().attempts, len(slept)) == (3, 3, 2)
        # every failure but the last sent the call on; the last one ended it
        assert [reading.failed_over for reading in pool.readings()] == [3, 2]
