"""The LLM client against the simulator (`engine.sim`) on loopback: every error class, Retry-After,
header re-sync, adaptive mode, live reconfiguration, the endpoint pool and the capability probe.

A recording transport (the real aiohttp one, with a log of each exchange) lets the tests see what
went over the wire and when, beside what the client counted and what the server counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from engine.errors import EndpointError
from engine.llm import (
    AimdSettings,
    AiohttpTransport,
    Capability,
    ConnectionFailedError,
    EndpointConfig,
    EndpointPool,
    EndpointTimeoutError,
    LLMClient,
    LLMError,
    MalformedResponseError,
    QuotaExceededError,
    RateLimiter,
    RawResponse,
    RequestRejectedError,
    RetryPolicy,
    Secret,
    ServerError,
)
from engine.llm.pacing.gate import SEND_GATE, CallHeldBack, SendGate
from engine.serving.protocol import Scored
from engine.sim import SimConfig, SimServer, serve_sim
from engine.sim.world import World
from engine.task import load_task

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TASK = load_task("sum", seed=0)
FAST = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01)
MESSAGES = [{"role": "user", "content": "Add the two numbers.\n\nInput: 2 3\nOutput:"}]


@dataclass(frozen=True, slots=True)
class Exchange:
    sent_at: float
    done_at: float
    status: int | None  # None: no HTTP answer (the error kind says why)
    kind: str
    headers: dict[str, str]


class RecordingTransport(AiohttpTransport):
    """The real transport, with a log of every exchange and the most requests seen at once."""

    def __init__(self, base_url: str, *, connections: int = 64, timeout_s: float = 10.0) -> None:
        super().__init__(
            base_url,
            endpoint="sim",
            headers={},
            connections=connections,
            connect_timeout_s=5.0,
            timeout_s=timeout_s,
        )
        self.log: list[Exchange] = []
        self.active = 0
        self.most_active = 0

    async def post(self, path: str, body: bytes) -> RawResponse:
        sent = time.monotonic()
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            raw = await super().post(path, body)
        except LLMError as error:
            self.log.append(Exchange(sent, time.monotonic(), None, error.kind, {}))
            raise
        finally:
            self.active -= 1
        headers = {name.lower(): value for name, value in raw.headers.items()}
        self.log.append(Exchange(sent, time.monotonic(), raw.status, "answer", headers))
        return raw


@asynccontextmanager
async def sim(backend: Any = None, **knobs: Any) -> AsyncIterator[SimServer]:
    async with serve_sim(SimConfig(tasks=(TASK,), **knobs), backend=backend) as server:
        yield server


def endpoint(server: SimServer, **options: Any) -> EndpointConfig:
    values: dict[str, Any] = {
        "name": "sim",
        "base_url": server.base_url,
        "model": "sim-1",
        "retry": FAST,
        "timeout_s": 10.0,
    }
    values.update(options)
    return EndpointConfig(**values)


@asynccontextmanager
async def recorded(
    server: SimServer, **options: Any
) -> AsyncIterator[tuple[LLMClient, RecordingTransport]]:
    limiter = options.pop("limiter", None)
    config = endpoint(server, **options)
    transport = RecordingTransport(
        server.base_url, connections=config.concurrency, timeout_s=config.timeout_s
    )
    async with LLMClient(config, transport=transport, limiter=limiter) as client:
        yield client, transport


async def ask(client: LLMClient | EndpointPool, max_tokens: int = 8) -> str:
    answer = await client.chat(MESSAGES, max_tokens=max_tokens)
    return answer.text


async def drain(server: SimServer, requests: int) -> None:
    """Use up the simulator's request bucket with plain requests outside the client."""
    url = f"{server.base_url}/chat/completions"
    body = {"model": "sim-1", "messages": MESSAGES, "max_tokens": 1}
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            async with session.post(url, json=body) as response:
                await response.read()

        await asyncio.gather(*(one() for _ in range(requests)))


# -- error classes -------------------------------------------------------------------------------


async def test_rate_limit_429_waits_retry_after_ms_then_succeeds() -> None:
    # 60 rpm: the server's bucket holds 60 requests and gains one a second; the 61st waits up
    # to a second for one (the 60 before it take well under that, even on a busy machine)
    async with (
        sim(requests_per_minute=60) as server,
        recorded(server, rate_limit_headers=False) as (client, transport),
    ):
        for _ in range(60):
            await ask(client)
        assert client.stats().rate_limited == 0
        await ask(client)
        stats = client.stats()
    assert stats.rate_limited == 1 and stats.retries == 1
    assert stats.calls == stats.succeeded == 61 and stats.attempts == 62
    limited, retry = transport.log[-2], transport.log[-1]
    assert limited.status == 429 and retry.status == 200
    assert "retry-after" in limited.headers
    waited_s = retry.sent_at - limited.done_at
    asked_s = int(limited.headers["retry-after-ms"]) / 1000
    assert 0.2 < asked_s <= 1.0
    assert asked_s <= waited_s <= asked_s * 1.1 + 0.2
    assert server.stats()["by_status"] == {"200": 61, "429": 1}


class _SecondsOnly(SimServer):
    """The simulator with `retry-after-ms` removed: only the whole-seconds Retry-After is left."""

    def app(self) -> web.Application:
        app = super().app()

        @web.middleware
        async def strip(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            response = await handler(request)
            response.headers.popall("retry-after-ms", None)
            return response

        app.middlewares.append(strip)
        return app


async def test_rate_limit_429_honours_whole_second_retry_after() -> None:
    server = _SecondsOnly(SimConfig(tasks=(TASK,), requests_per_minute=60))
    await server.start()
    try:
        await drain(server, 60)
        async with recorded(server, rate_limit_headers=False) as (client, transport):
            await ask(client)
            paused_s = client.limiter.reading().paused_s
    finally:
        await server.stop()
    limited, retry = transport.log
    assert limited.status == 429 and "retry-after-ms" not in limited.headers
    assert limited.headers["retry-after"] == "1"
    assert retry.status == 200
    assert 1.0 <= retry.sent_at - limited.done_at <= 1.35
    assert paused_s == 0.0  # the limiter's pause ended when the retry went out


async def test_header_resync_adopts_the_servers_limits() -> None:
    # told nothing, the client reads x-ratelimit-* from the first answer and paces itself; the
    # server's bucket is nearly empty, so without the re-sync the burst would meet many 429s
    async with sim(requests_per_minute=600, tokens_per_minute=1_000_000) as server:
        await drain(server, 594)
        async with recorded(server, concurrency=32) as (client, transport):
            await ask(client)
            reading = client.limiter.reading()
            assert reading.requests_per_minute == pytest.approx(600)
            assert reading.tokens_per_minute == pytest.approx(1_000_000)
            started = time.monotonic()
            await asyncio.gather(*(ask(client) for _ in range(10)))
            elapsed = time.monotonic() - started
            stats = client.stats()
    assert stats.succeeded == 11
    assert stats.rate_limited <= 1
    # about five were left in the server's bucket; the rest came at 10/s
    assert elapsed >= 0.3
    assert transport.log[0].headers["x-ratelimit-limit-requests"] == "600"


async def test_insufficient_quota_stops_with_a_clear_message() -> None:
    async with (
        sim(quota_requests=3) as server,
        recorded(server, concurrency=4) as (client, transport),
    ):
        for _ in range(3):
            await ask(client)
        outcomes = await asyncio.gather(*(ask(client) for _ in range(40)), return_exceptions=True)
        stats = client.stats()
        client.clear_quota_stop()
        with pytest.raises(QuotaExceededError):
            await ask(client)  # sent again after the stop is cleared, and still empty
    assert all(isinstance(outcome, QuotaExceededError) for outcome in outcomes)
    first = next(o for o in outcomes if isinstance(o, QuotaExceededError))
    message = str(first)
    assert "quota" in message and "billing" in message and "not retried" in message
    assert "'sim'" in message and first.attempts == 1 and not first.retryable
    # no retries, and only the calls already sent when the first error came reached the server
    assert stats.retries == 0 and stats.failed == 40 and stats.final_errors == {"quota": 40}
    quota_answers = sum(1 for exchange in transport.log if exchange.status == 429)
    assert 1 <= quota_answers <= 4 + 1
    assert server.stats()["by_status"]["429"] == quota_answers


@pytest.mark.parametrize(
    ("fault", "kind", "error_type"),
    [
        ("500", "server", ServerError),
        ("503", "server", ServerError),
        ("reset", "connection", ConnectionFailedError),
        ("malformed", "malformed", MalformedResponseError),
        ("hang", "timeout", EndpointTimeoutError),
    ],
)
async def test_faults_are_retried_and_bounded(
    fault: str, kind: str, error_type: type[LLMError]
) -> None:
    retry = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01)
    async with (
        sim(**{f"fault_{fault}": 1.0}, hang_s=5.0) as server,
        recorded(server, retry=retry, timeout_s=0.3) as (client, transport),
    ):
        with pytest.raises(error_type) as caught:
            await ask(client)
        stats = client.stats()
    assert caught.value.retryable and caught.value.attempts == 3
    assert "gave up after 3 attempts" in str(caught.value)
    assert stats.attempts == 3 and stats.retries == 2 and stats.failed == 1
    assert stats.errors == {kind: 3} and stats.final_errors == {kind: 1}
    assert len(transport.log) == 3 and server.stats()["faults"] == {fault: 3}


async def test_faults_at_a_rate_all_recover() -> None:
    retry = RetryPolicy(max_attempts=10, base_delay_s=0.001, max_delay_s=0.01)
    rates = {"fault_500": 0.06, "fault_503": 0.06, "fault_reset": 0.06, "fault_malformed": 0.06}
    async with (
        sim(**rates, fault_hang=0.04, hang_s=5.0, seed=3) as server,
        recorded(server, retry=retry, timeout_s=0.3, concurrency=16) as (client, _),
    ):
        texts = await asyncio.gather(*(ask(client) for _ in range(60)))
        stats = client.stats()
    assert len(texts) == 60 and all(texts)
    assert stats.calls == stats.succeeded == 60 and stats.failed == 0 and stats.in_flight == 0
    seen = server.stats()
    faults = sum(seen["faults"].values())
    assert faults > 0 and stats.retries == faults
    assert stats.attempts == seen["requests"] == 60 + faults
    assert set(stats.errors) <= {"server", "connection", "malformed", "timeout"}


async def test_bad_request_unauthorized_and_unknown_model_are_final() -> None:
    async with sim(api_keys=("sk-right-key-123",)) as server:
        cases: list[tuple[dict[str, Any], Callable[[LLMClient], Awaitable[Any]], int, str]] = [
            (
                {"api_key": None},
                lambda c: c.chat(MESSAGES, max_tokens=4, temperature=5.0),
                401,
                "check the API key",
            ),
        ]
        right = Secret("sk-right-key-123")
        cases += [
            (
                {"api_key": right},
                lambda c: c.chat(MESSAGES, max_tokens=4, temperature=5.0),
                400,
                "temperature",
            ),
            ({"api_key": Secret("sk-wrong-key-456")}, ask, 401, "check the API key"),
            ({"api_key": right, "model": "gpt-nothing"}, ask, 404, "gpt-nothing"),
        ]
        for options, call, status, words in cases:
            before = server.stats()["requests"]
            async with LLMClient(endpoint(server, **options)) as client:
                with pytest.raises(RequestRejectedError) as caught:
                    await call(client)
                stats = client.stats()
            assert caught.value.status == status and not caught.value.retryable
            assert words in str(caught.value) and "sk-wrong-key-456" not in str(caught.value)
            assert stats.attempts == 1 and stats.retries == 0 and stats.final_errors
            assert server.stats()["requests"] == before + 1


# -- adaptive mode -------------------------------------------------------------------------------


async def run_for(client: LLMClient, seconds: float, workers: int) -> list[float]:
    """Workers calling until the deadline, when the calls still queued are cancelled; the
    times of the successes."""
    start = time.monotonic()
    successes: list[float] = []

    async def worker() -> None:
        while True:
            await ask(client, max_tokens=4)
            successes.append(time.monotonic() - start)

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await asyncio.gather(*(worker() for _ in range(workers)))
    stats = client.stats()
    assert stats.in_flight == 0 and stats.calls == stats.succeeded + stats.failed + stats.cancelled
    return successes


async def test_adaptive_finds_an_unknown_limit_with_few_429s() -> None:
    # 600 rpm (10/s) that the client is not told, headers ignored: pure AIMD from 5/s, against a
    # server whose bucket someone else emptied (the first answer is a 429 that says nothing
    # about the rate: the search goes on)
    aimd = AimdSettings(start_requests_per_minute=300)
    limiter = RateLimiter(adaptive=True, concurrency=32, aimd=aimd)
    duration, warm = 7.5, 5.0
    async with sim(requests_per_minute=600) as server:
        await drain(server, 620)
        async with recorded(server, rate_limit_headers=False, concurrency=32, limiter=limiter) as (
            client,
            transport,
        ):
            start = time.monotonic()
            successes = await run_for(client, duration, workers=32)
            final_rpm = client.limiter.reading().requests_per_minute
    after = [e for e in transport.log if e.sent_at - start >= warm]
    # the slow start overshoots on the allowance the server saved meanwhile, then settles: the
    # 429s that end it are over in a cut or two, not a cut per 429 at 0.9 each (seven of them)
    ended = [e for e in transport.log if e.sent_at - start >= 1.0 and e.status == 429]
    assert len(ended) <= 4, [round(e.sent_at - start, 2) for e in ended]
    assert sum(1 for e in after if e.status == 429) <= 2  # of about 25 requests
    achieved = sum(1 for t in successes if warm <= t < duration) / ((duration - warm) * 10)
    assert 0.75 <= achieved <= 1.1
    assert final_rpm is not None and 400 <= final_rpm <= 700


async def test_adaptive_with_headers_adopts_the_limit_at_once() -> None:
    async with sim(requests_per_minute=600) as server:
        await drain(server, 590)
        async with recorded(server, adaptive=True, concurrency=32) as (client, transport):
            successes = await run_for(client, 1.5, workers=32)
            reading = client.limiter.reading()
    assert reading.requests_per_minute == pytest.approx(600)
    assert sum(1 for e in transport.log if e.status == 429) <= 1
    assert len(successes) >= 0.8 * 10 * 1.5  # paced at the limit from the first answer on


# -- live reconfiguration ------------------------------------------------------------------------


async def test_live_rate_change_applies_to_waiters_and_loses_none() -> None:
    async with (
        sim() as server,
        recorded(server, requests_per_minute=300, concurrency=64) as (client, log),
    ):
        calls = [asyncio.ensure_future(ask(client)) for _ in range(40)]
        await asyncio.sleep(0.6)
        slow_sent = len(log.log) + log.active
        client.reconfigure(requests_per_minute=30_000, burst_s=0.05)
        changed_at = time.monotonic()
        texts = await asyncio.gather(*calls)
        finished = time.monotonic()
        stats = client.stats()
    assert len(texts) == 40 and stats.succeeded == 40 and stats.cancelled == 0
    assert 2 <= slow_sent <= 6  # 5/s (a burst of 2.5, then 0.2 s apart)
    assert finished - changed_at < 1.0  # the 35 left at 500/s, not 7 s at 5/s
    gaps = [b.sent_at - a.sent_at for a, b in zip(log.log, log.log[1:], strict=False)]
    assert max(gaps[-20:]) < 0.1


async def test_live_concurrency_change_up_and_down() -> None:
    async with (
        sim(latency_base_s=0.15) as server,
        recorded(server, concurrency=2) as (client, transport),
    ):
        calls = [asyncio.ensure_future(ask(client)) for _ in range(40)]
        await asyncio.sleep(0.2)
        assert transport.most_active == 2
        client.reconfigure(concurrency=12)
        await asyncio.sleep(0.25)
        assert transport.active == 12
        client.reconfigure(concurrency=3)
        await asyncio.sleep(0.2)  # the 12 in flight finish; only 3 start again
        assert transport.active <= 3 and client.limiter.in_flight <= 3
        texts = await asyncio.gather(*calls)
        stats = client.stats()
    assert len(texts) == 40 and stats.calls == stats.succeeded == 40
    assert transport.most_active == 12 and client.limiter.waiters == 0


# -- several endpoints ---------------------------------------------------------------------------


async def test_pool_spreads_by_least_outstanding_work() -> None:
    async with (
        sim(latency_base_s=0.01) as fast,
        sim(latency_base_s=0.2) as slow,
        LLMClient(endpoint(fast, name="fast", concurrency=8)) as a,
        LLMClient(endpoint(slow, name="slow", concurrency=8)) as b,
    ):
        pool = EndpointPool([a, b], role="scoring")
        first = await asyncio.gather(*(ask(pool) for _ in range(16)))
        assert len(first) == 16 and a.stats().calls == b.stats().calls == 8

        start = time.monotonic()

        async def worker() -> None:
            while time.monotonic() - start < 1.0:
                await ask(pool)

        await asyncio.gather(*(worker() for _ in range(6)))
        fast_calls, slow_calls = a.stats().calls - 8, b.stats().calls - 8
    # the slow endpoint holds its calls 20 times longer, so it gets far fewer
    assert fast_calls > 5 * slow_calls > 0
    assert fast.stats()["requests"] == a.stats().calls


async def test_pool_cools_down_a_failing_endpoint_and_fails_over() -> None:
    retry = RetryPolicy(max_attempts=2, base_delay_s=0.001, max_delay_s=0.002)
    now = [0.0]
    async with (
        sim() as good,
        sim(fault_500=1.0) as bad,
        LLMClient(endpoint(good, name="good", retry=retry)) as a,
        LLMClient(endpoint(bad, name="bad", retry=retry)) as b,
    ):
        pool = EndpointPool(
            [b, a], role="scoring", failure_threshold=3, cooldown_s=30, time_s=lambda: now[0]
        )
        # both idle: the tie goes to the first listed, which fails every call after its
        # client's retries; the pool sends each such call to the other endpoint
        outcomes = [(await pool.chat(MESSAGES, max_tokens=4)).endpoint for _ in range(20)]
        assert outcomes == ["good"] * 20
        assert list(pool.cooling()) == ["bad"]
        assert bad.stats()["requests"] == 3 * 2  # cooled after 3 calls failed, 2 attempts each
        reading = {r.name: r for r in pool.readings()}["bad"]
        assert (reading.state, reading.failed_over, reading.resent) == ("cooled", 3, 0)
        now[0] = 31.0  # the cool-down is over: one call tests the bad endpoint again
        assert pool.cooling() == {}
        assert {r.name: r.state for r in pool.readings()}["bad"] == "probing"
        assert (await pool.chat(MESSAGES, max_tokens=4)).endpoint == "good"
        assert bad.stats()["requests"] == 4 * 2
        assert pool.cooling()["bad"] == pytest.approx(60.0)  # failed again: twice as long


# -- capabilities --------------------------------------------------------------------------------


class _GeneratedOnly(World):
    """A llama.cpp-like server: `echo` gives back the log-probs of generated tokens only."""

    async def prompt_logprobs(self, prompt: str, top: int) -> Sequence[Scored]:
        return ()


async def test_capability_probe_and_continuation_logprob() -> None:
    async with sim() as server, LLMClient(endpoint(server)) as client:
        capabilities = await client.capabilities()
        assert capabilities.prompt_logprobs and capabilities.echo_max_tokens == 0
        assert capabilities.generated_logprobs and capabilities.chat_logprobs
        assert capabilities.completions and capabilities.chat
        await client.require(Capability.PROMPT_LOGPROBS)
        probes = client.stats().calls
        assert await client.capabilities() is capabilities and client.stats().calls == probes
        example = TASK.examples[0]
        prompt = f"Add the two numbers.\n\nInput: {example.input}\nOutput:"
        right = await client.continuation_logprob(prompt, " " + example.outputs[0])
        wrong = await client.continuation_logprob(prompt, " banana split")
    assert right.tokens and "".join(right.tokens).strip() == example.outputs[0]
    assert right.logprob < 0 and len(right.token_logprobs) == len(right.tokens)
    assert right.logprob / len(right.tokens) > wrong.logprob / len(wrong.tokens)


async def test_capability_probe_refuses_generated_only_echo_before_scoring() -> None:
    config = SimConfig(tasks=(TASK,))
    backend = _GeneratedOnly([TASK], config)
    async with (
        sim(backend=backend) as server,
        LLMClient(endpoint(server, name="llama")) as client,
    ):
        with pytest.raises(EndpointError) as caught:
            await client.require(Capability.PROMPT_LOGPROBS)
        scoring_calls = server.stats()["requests"]
        with pytest.raises(EndpointError):
            await client.continuation_logprob("Say:", " yes")
        assert server.stats()["requests"] == scoring_calls  # refused before any scoring call
    message = str(caught.value)
    assert "'llama'" in message and "prompt logprobs" in message
    assert "execution-accuracy" in message and "only generated tokens" in message


async def test_a_shut_send_gate_takes_back_calls_not_yet_sent() -> None:
    """A paused caller: a call made while its gate is shut never goes out, and calls queued at
    the limiter when it shuts come back unsent (CallHeldBack), freeing their slots."""
    async with sim() as server, LLMClient(endpoint(server, requests_per_minute=120)) as client:
        gate = SendGate()
        token = SEND_GATE.set(gate)
        try:
            calls = [asyncio.ensure_future(client.chat(MESSAGES, max_tokens=4)) for _ in range(8)]
            await asyncio.sleep(0.3)  # a burst of one second's worth went out; the rest queue
            gate.shut()
            results = await asyncio.gather(*calls, return_exceptions=True)
            sent = server.stats()["requests"]
            held = [r for r in results if isinstance(r, CallHeldBack)]
            assert len(held) == 8 - sent and held
            with pytest.raises(CallHeldBack):
                await client.chat(MESSAGES, max_tokens=4)
            assert server.stats()["requests"] == sent
            gate.open()
            await client.chat(MESSAGES, max_tokens=4)
            assert server.stats()["requests"] == sent + 1
        finally:
            SEND_GATE.reset(token)
        assert client.stats().in_flight == 0
