"""The client against a small scripted aiohttp server of the test's own, on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from engine.errors import ConfigError, EndpointError
from engine.llm import (
    Capability,
    ConnectionFailedError,
    EndpointConfig,
    EndpointPool,
    EndpointTimeoutError,
    LLMClient,
    QuotaExceededError,
    RequestRejectedError,
    RetryPolicy,
)

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01)
KEY = "sk-test-very-secret-0123456789"


@dataclass
class Scripted:
    """Answers popped from `script` in order (then success); requests recorded."""

    script: list[Any] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    echo_mode: str = "full"  # "full" (vLLM), "generated" (llama.cpp), "reject"


def _completion_body(body: dict[str, Any], mode: str) -> dict[str, Any]:
    prompt: str = body["prompt"]
    choice: dict[str, Any] = {"index": 0, "text": " Paris", "finish_reason": "stop"}
    if body.get("logprobs") is not None:
        if body.get("echo") and mode == "full":
            words = prompt.split(" ")
            tokens = [words[0]] + [" " + w for w in words[1:]]
            offsets, position = [], 0
            for token in tokens:
                offsets.append(position)
                position += len(token)
            # " Paris" echoes with the log-prob it is generated with below, as a real server's
            values: list[float | None] = [None] + [
                -0.1 if t == " Paris" else -0.5 for t in tokens[1:]
            ]
        else:
            tokens, values, offsets = [" Paris"], [-0.1], [len(prompt)]
        choice["logprobs"] = {"tokens": tokens, "token_logprobs": values, "text_offset": offsets}
    return {
        "id": "c",
        "object": "text_completion",
        "choices": [choice],
        "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
    }


def make_app(state: Scripted) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.requests.append((request.path, dict(request.headers), body))
        if state.script:
            step = state.script.pop(0)
            if step == "reset":
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            if step == "slow":
                await asyncio.sleep(1.0)
            elif step == "malformed":
                return web.Response(body=b"{not json", content_type="application/json")
            else:
                status, headers, payload = step
                return web.Response(
                    status=status,
                    headers=headers,
                    body=orjson.dumps(payload),
                    content_type="application/json",
                )
        if request.path.endswith("/chat/completions"):
            n = int(body.get("n", 1))
            answer: dict[str, Any] = {
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": f"answer {i}"},
                        "finish_reason": "stop",
                    }
                    for i in reversed(range(n))
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            }
            if body.get("logprobs"):
                for choice in answer["choices"]:
                    choice["logprobs"] = {"content": [{"token": "answer", "logprob": -0.2}]}
            return web.json_response(answer, headers={"x-ratelimit-limit-requests": "6000"})
        if body.get("echo") and state.echo_mode == "reject":
            return web.json_response({"error": {"message": "echo is not supported"}}, status=400)
        return web.json_response(_completion_body(body, state.echo_mode))

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    app.router.add_post("/v1/completions", handle)
    return app


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Scripted]]:
    state = Scripted()
    runner = web.AppRunner(make_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1", state
    finally:
        await runner.cleanup()


def config(base_url: str, **options: Any) -> EndpointConfig:
    values: dict[str, Any] = {"name": "local", "base_url": base_url, "model": "m", "retry": FAST}
    values.update(options)
    return EndpointConfig(**values)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_chat_parses_choices_usage_and_sends_key(
    server: tuple[str, Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = server
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    async with LLMClient(
        config(url, api_key_env="TEST_LLM_KEY", extra_headers={"X-Team": "ape"})
    ) as client:
        result = await client.chat(
            [{"role": "user", "content": "hi"}], max_tokens=5, stop=["\n"], n=2, logprobs=True
        )
    assert result.texts == ("answer 0", "answer 1")
    assert result.finish_reason == "stop"
    assert result.usage.total_tokens == 7
    assert result.attempts == 1
    assert result.latency_s > 0
    assert result.logprobs[0] is not None
    assert result.logprobs[0].logprobs == (-0.2,)
    path, headers, body = state.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["X-Team"] == "ape"
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "temperature": 0.0,
        "n": 2,
        "stop": ["\n"],
        "logprobs": True,
    }
    stats = client.stats()
    assert (stats.calls, stats.succeeded, stats.attempts, stats.retries) == (1, 1, 1, 0)
    assert stats.prompt_tokens == 5


@pytest.mark.anyio
async def test_retryable_errors_are_retried_and_counted(server: tuple[str, Scripted]) -> None:
    url, state = server
    state.script = [
        (500, {}, {"error": {"message": "internal"}}),
        "malformed",
        "reset",
        (
            429,
            {"retry-after-ms": "20"},
            {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
        ),
        (
            529,
            {},
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
    ]
    async with LLMClient(
        config(url, retry=RetryPolicy(max_attempts=6, base_delay_s=0.001))
    ) as client:
        started = asyncio.get_running_loop().time()
        result = await client.complete("The capital of France is", max_tokens=3)
        elapsed = asyncio.get_running_loop().time() - started
    assert result.text == " Paris"
    assert result.attempts == 6
    assert elapsed >= 0.02  # the 429's retry-after-ms was honoured
    stats = client.stats()
    assert stats.attempts == 6
    assert stats.retries == 5
    assert stats.rate_limited == 1
    assert stats.errors == {"server": 2, "malformed": 1, "connection": 1, "rate_limit": 1}
    assert (stats.succeeded, stats.failed) == (1, 0)


@pytest.mark.anyio
async def test_quota_429_is_final(server: tuple[str, Scripted]) -> None:
    url, state = server
    state.script = [
        (
            429,
            {},
            {
                "error": {
                    "message": "You exceeded your current quota, please check your plan and billing details.",
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                }
            },
        )
    ]
    async with LLMClient(config(url)) as client:
        with pytest.raises(QuotaExceededError, match="quota") as caught:
            await client.chat([{"role": "user", "content": "hi"}])
    assert caught.value.endpoint == "local"
    assert client.stats().attempts == 1
    assert client.stats().final_errors == {"quota": 1}


@pytest.mark.anyio
async def test_bad_request_is_final_with_the_servers_message(server: tuple[str, Scripted]) -> None:
    url, state = server
    state.script = [
        (
            400,
            {},
            {
                "object": "error",
                "message": "This model's maximum context length is 2048 tokens",
                "code": 400,
            },
        )
    ]
    async with LLMClient(config(url)) as client:
        with pytest.raises(RequestRejectedError, match="maximum context length"):
            await client.complete("x")
    assert client.stats().attempts == 1


@pytest.mark.anyio
async def test_timeouts_retry_then_fail_finally(server: tuple[str, Scripted]) -> None:
    url, state = server
    state.script = ["slow", "slow"]
    cfg = config(url, timeout_s=0.1, retry=RetryPolicy(max_attempts=2, base_delay_s=0.001))
    async with LLMClient(cfg) as client:
        with pytest.raises(EndpointTimeoutError, match="gave up after 2 attempts"):
            await client.complete("x")
    stats = client.stats()
    assert (stats.attempts, stats.failed, stats.final_errors) == (2, 1, {"timeout": 1})


@pytest.mark.anyio
async def test_unreachable_endpoint_is_a_connection_error() -> None:
    cfg = config("http://127.0.0.1:9/v1", retry=RetryPolicy(max_attempts=2, base_delay_s=0.001))
    async with LLMClient(cfg) as client:
        with pytest.raises(ConnectionFailedError, match="connection failed"):
            await client.complete("x")


@pytest.mark.anyio
async def test_key_never_in_repr_or_errors(server: tuple[str, Scripted], tmp_path: Any) -> None:
    url, state = server
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    state.script = [(401, {}, {"error": {"message": f"Incorrect API key provided: {KEY}"}})]
    cfg = config(url, api_key_file=str(key_file), extra_headers={"api-key": KEY})
    async with LLMClient(cfg) as client:
        with pytest.raises(RequestRejectedError) as caught:
            await client.chat([{"role": "user", "content": "hi"}])
        assert KEY not in repr(client)
    assert KEY not in str(caught.value)
    assert KEY not in repr(cfg)
    assert "check the API key" in str(caught.value)


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    client = LLMClient(config("http://127.0.0.1:1/v1", api_key_env="NO_SUCH_KEY_VAR"))
    with pytest.raises(ConfigError, match="NO_SUCH_KEY_VAR"):
        asyncio.run(client.open())


@pytest.mark.anyio
async def test_continuation_logprob_picks_the_continuation_tokens(
    server: tuple[str, Scripted],
) -> None:
    url, state = server
    async with LLMClient(config(url)) as client:
        result = await client.continuation_logprob("Input: cat\nOutput:", " the cat sat")
    assert result.tokens == (" the", " cat", " sat")
    assert result.logprob == pytest.approx(-1.5)
    assert result.score == pytest.approx(2.718281828**-0.5)
    _, _, body = state.requests[0]
    assert body["echo"] is True
    assert body["max_tokens"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["generated", "reject"])
async def test_capability_probe_refuses_llama_cpp_like_echo(
    server: tuple[str, Scripted], mode: str
) -> None:
    url, state = server
    state.echo_mode = mode
    async with LLMClient(config(url, name="llama")) as client:
        capabilities = await client.capabilities()
        assert capabilities.completions
        assert capabilities.chat
        assert capabilities.generated_logprobs
        assert capabilities.chat_logprobs
        assert not capabilities.prompt_logprobs
        calls = client.stats().calls
        with pytest.raises(EndpointError, match=r"'llama'.*execution-accuracy"):
            await client.require(Capability.PROMPT_LOGPROBS)
        with pytest.raises(EndpointError, match="execution-accuracy"):
            await client.continuation_logprob("a", " b")
        assert client.stats().calls == calls  # probed once, cached; no scoring call was made


@pytest.mark.anyio
async def test_capability_probe_accepts_full_echo(server: tuple[str, Scripted]) -> None:
    url, _state = server
    async with LLMClient(config(url)) as client:
        await client.require(Capability.PROMPT_LOGPROBS)
        capabilities = await client.capabilities()
    assert capabilities.echo_max_tokens == 0
    assert capabilities.suffix


@pytest.mark.anyio
async def test_pool_spreads_by_outstanding_work_and_cools_failures(
    server: tuple[str, Scripted],
) -> None:
    url, state = server
    now = [0.0]
    async with (
        LLMClient(config(url, name="a", concurrency=4)) as a,
        LLMClient(config(url, name="b", concurrency=4)) as b,
    ):
        pool = EndpointPool(
            [a, b], role="scoring", failure_threshold=2, cooldown_s=10, time_s=lambda: now[0]
        )
        results = await asyncio.gather(*(pool.complete("x", max_tokens=1) for _ in range(8)))
        assert {r.endpoint for r in results} == {"a", "b"}
        assert a.stats().calls == 4
        assert b.stats().calls == 4
        state.script = [(400, {}, {"error": {"message": "bad"}})] * 2
        for _ in range(2):  # the request's fault, not the endpoint's: raised, nothing cooled
            with pytest.raises(RequestRejectedError):
                await pool.complete("x")
        assert pool.cooling() == {}
        # a connection that breaks after the request went out: the client hands the call over
        # at once (no retry on that endpoint) and the other endpoint answers it
        state.script = ["reset"]
        assert (await pool.complete("x")).endpoint == "b"
        assert [r.resent for r in pool.readings()] == [1, 0]  # it may have been served
        assert [r.state for r in pool.readings()] == ["probing", "ok"]  # one call tests it
        state.script = ["reset"]
        assert (await pool.complete("x")).endpoint == "b"
        cooled = pool.cooling()
        assert list(cooled) == ["a"]  # the probe broke too
        assert (await pool.complete("x")).endpoint == "b"
        now[0] = 11.0
        assert pool.cooling() == {}


@pytest.mark.anyio
async def test_live_concurrency_resize(server: tuple[str, Scripted]) -> None:
    url, _state = server
    async with LLMClient(config(url, concurrency=1)) as client:
        client.reconfigure(concurrency=8, requests_per_minute=60_000)
        await asyncio.gather(
            *(client.chat([{"role": "user", "content": "x"}], max_tokens=1) for _ in range(16))
        )
        reading = client.limiter.reading()
    assert reading.concurrency == 8
    assert reading.requests_per_minute == 6000  # the server's header limit is lower
    assert client.stats().succeeded == 16
