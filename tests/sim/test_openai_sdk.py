"""The simulator against the official `openai` SDK: calls, logprobs, errors, limits, faults."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import openai
import orjson
import pytest

from engine.llm.pacing.headers import parse_duration_s
from engine.sim import SimConfig, SimServer, serve_sim
from engine.task import load_task

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TASK = load_task("sum", seed=0)
INSTRUCTION = "Add the two numbers."


def scoring_prompt(x: str, instruction: str = INSTRUCTION) -> str:
    return f"{instruction}\n\nInput: {x}\nOutput:"


@asynccontextmanager
async def sim(**knobs: object) -> AsyncIterator[tuple[SimServer, openai.AsyncOpenAI]]:
    config = SimConfig(tasks=(TASK,), **knobs)  # type: ignore[arg-type]
    async with serve_sim(config) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        try:
            yield server, client
        finally:
            await client.close()


async def test_models_names_a_simulator() -> None:
    async with sim() as (_, client):
        models = await client.models.list()
        assert [m.id for m in models.data] == ["sim-1"]
        assert "simulator" in models.data[0].owned_by
        assert (await client.models.retrieve("sim-1")).id == "sim-1"


async def test_chat_and_completions_calls() -> None:
    async with sim() as (server, client):
        example = TASK.examples[0]
        chat = await client.chat.completions.create(
            model="sim-1",
            messages=[{"role": "user", "content": scoring_prompt(example.input)}],
            temperature=0,
            max_tokens=16,
            logprobs=True,
            top_logprobs=2,
        )
        choice = chat.choices[0]
        assert chat.object == "chat.completion" and chat.id.startswith("chatcmpl-")
        assert choice.finish_reason == "stop" and choice.message.role == "assistant"
        assert choice.message.content
        assert choice.logprobs is not None and choice.logprobs.content
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
        assert len(choice.logprobs.content[0].top_logprobs) == 2
        assert chat.usage is not None
        assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

        completion = await client.completions.create(
            model="sim-1",
            prompt=[scoring_prompt(e.input) for e in TASK.examples[:3]],
            max_tokens=16,
            temperature=0,
            stop=["\n"],
            n=2,
        )
        assert completion.object == "text_completion"
        assert [c.index for c in completion.choices] == list(range(6))
        assert all(c.text.startswith(" ") for c in completion.choices)
        # temperature 0: the n choices of one prompt agree
        assert completion.choices[0].text == completion.choices[1].text
        truncated = await client.completions.create(model="sim-1", prompt="Say OK.", max_tokens=1)
        assert truncated.choices[0].finish_reason == "length"
        assert server.stats()["by_route"] == {"/v1/chat/completions": 1, "/v1/completions": 2}


async def test_echo_logprobs_score_the_answer_by_text_offset() -> None:
    async with sim() as (server, client):
        assert server.world is not None
        scores = []
        for index, example in enumerate(TASK.examples[:40]):
            prompt = scoring_prompt(example.input)
            answer = " " + example.outputs[0]
            result = await client.completions.create(
                model="sim-1", prompt=prompt + answer, echo=True, logprobs=1, max_tokens=0
            )
            choice = result.choices[0]
            assert choice.text == prompt + answer
            block = choice.logprobs
            assert block is not None and block.tokens and block.text_offset
            assert block.token_logprobs is not None and block.token_logprobs[0] is None
            assert "".join(block.tokens) == prompt + answer
            picked = [
                v
                for v, o in zip(block.token_logprobs, block.text_offset, strict=True)
                if o >= len(prompt)
            ]
            score = math.exp(sum(v for v in picked if v is not None) / len(picked))
            assert score == pytest.approx(
                server.world.p_correct(INSTRUCTION, 0, index), rel=1e-6, abs=1e-12
            )
            scores.append(score)
        assert result.usage is not None and result.usage.completion_tokens == 0
        # log-prob scores of a good instruction beat those of an off-task one on average
        off = await client.completions.create(
            model="sim-1",
            prompt=[
                scoring_prompt(e.input, "Repeat the input exactly.") + " " + e.outputs[0]
                for e in TASK.examples[:40]
            ],
            echo=True,
            logprobs=0,
            max_tokens=0,
        )
        assert len(off.choices) == 40
        assert server.quality(INSTRUCTION) > server.quality("Repeat the input exactly.")


async def test_errors_parse_into_the_sdk_exception_types() -> None:
    async with sim(api_keys=("sk-right",)) as (server, _):
        wrong = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
        right = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-right", max_retries=0)
        messages = [{"role": "user", "content": "Say OK."}]
        with pytest.raises(openai.AuthenticationError) as auth:
            await wrong.chat.completions.create(model="sim-1", messages=messages)  # type: ignore[arg-type]
        assert auth.value.status_code == 401 and auth.value.code == "invalid_api_key"
        assert "sk-wrong" not in str(auth.value)
        with pytest.raises(openai.NotFoundError) as missing:
            await right.chat.completions.create(model="gpt-9", messages=messages)  # type: ignore[arg-type]
        assert "gpt-9" in missing.value.message and missing.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as bad:
            await right.chat.completions.create(model="sim-1", messages=messages, n=0)  # type: ignore[arg-type]
        assert bad.value.param == "n"
        with pytest.raises(openai.BadRequestError) as streaming:
            await right.chat.completions.create(model="sim-1", messages=messages, stream=True)  # type: ignore[arg-type]
        assert streaming.value.param == "stream" and "stream" in streaming.value.message
        with pytest.raises(openai.BadRequestError) as no_messages:
            await right.chat.completions.create(model="sim-1", messages=[])
        assert no_messages.value.param == "messages"
        with pytest.raises(openai.BadRequestError) as bad_prompt:
            await right.completions.create(model="sim-1", prompt="x", logprobs=9)
        assert bad_prompt.value.param == "logprobs"
        async with aiohttp.ClientSession() as session:
            url = server.base_url + "/chat/completions"
            async with session.post(url, data=b"{not json") as answer:
                assert answer.status == 401  # the key is checked first
            headers = {"Authorization": "Bearer sk-right"}
            async with session.post(url, data=b"{not json", headers=headers) as answer:
                body = await answer.json()
                assert answer.status == 400 and set(body["error"]) == {
                    "message", "type", "param", "code"
                }  # fmt: skip
        await wrong.close()
        await right.close()
        assert server.stats()["by_status"] == {"401": 2, "404": 1, "400": 5}


async def test_request_limit_429_headers_and_sdk_retry_honouring_them() -> None:
    # 30 rpm: a request comes back every 2 s, so the 30 calls before the limit (each of the
    # SDK's calls takes milliseconds) end long before the bucket gains one, even on a busy machine
    async with sim(requests_per_minute=30) as (server, client):
        messages = [{"role": "user", "content": scoring_prompt(TASK.examples[0].input)}]
        for _ in range(30):
            await client.chat.completions.create(model="sim-1", messages=messages, max_tokens=4)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="sim-1", messages=messages)  # type: ignore[arg-type]
        error = limited.value
        assert error.code == "rate_limit_exceeded" and error.type == "requests"
        headers = error.response.headers
        assert headers["retry-after"] in ("1", "2") and 0 < int(headers["retry-after-ms"]) <= 2000
        assert headers["x-ratelimit-limit-requests"] == "30"
        assert headers["x-ratelimit-remaining-requests"] == "0"
        reset_s = parse_duration_s(headers["x-ratelimit-reset-requests"])  # e.g. "59.769s"
        assert reset_s is not None and 55 < reset_s <= 60
        # One retry is enough only if the SDK sleeps for retry-after-ms (up to 2 s): its own
        # backoff (0.5 s at most) would hit the limit again and raise.
        retrying = client.with_options(max_retries=1)
        start = time.monotonic()
        await retrying.chat.completions.create(model="sim-1", messages=messages, max_tokens=4)  # type: ignore[arg-type]
        waited = time.monotonic() - start
        assert 0.4 < waited < 4.0
        assert server.stats()["by_status"] == {"200": 31, "429": 2}


async def test_token_limit_and_headers_on_every_answer() -> None:
    async with sim(tokens_per_minute=600) as (_, client):
        prompt = scoring_prompt(TASK.examples[0].input)
        raw = await client.completions.with_raw_response.create(
            model="sim-1", prompt=prompt, max_tokens=500
        )
        assert raw.headers["x-ratelimit-limit-tokens"] == "600"
        remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
        assert remaining > 500  # the unused reservation was given back
        assert raw.headers["x-ratelimit-reset-tokens"].endswith("s")
        with pytest.raises(openai.RateLimitError) as limited:
            await client.completions.create(model="sim-1", prompt=prompt, max_tokens=599)
        assert limited.value.type == "tokens"
        assert int(limited.value.response.headers["retry-after"]) >= 1


async def test_per_key_limits_keep_keys_apart() -> None:
    async with sim(requests_per_minute=1, per_key_limits=True) as (server, client):
        other = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-other", max_retries=0)
        await client.completions.create(model="sim-1", prompt="Say OK.", max_tokens=1)
        await other.completions.create(model="sim-1", prompt="Say OK.", max_tokens=1)
        with pytest.raises(openai.RateLimitError):
            await other.completions.create(model="sim-1", prompt="Say OK.", max_tokens=1)
        await other.close()


async def test_quota_mode_answers_insufficient_quota() -> None:
    async with sim(quota_requests=1) as (_, client):
        await client.completions.create(model="sim-1", prompt="Say OK.", max_tokens=1)
        with pytest.raises(openai.RateLimitError) as quota:
            await client.completions.create(model="sim-1", prompt="Say OK.", max_tokens=1)
        assert quota.value.code == "insufficient_quota"


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("503", 503)])
async def test_server_error_faults(kind: str, status: int) -> None:
    async with sim(**{f"fault_{kind}": 1.0}) as (server, client):
        with pytest.raises(openai.InternalServerError) as fault:
            await client.completions.create(model="sim-1", prompt="Say OK.", max_tokens=1)
        assert fault.value.status_code == status
        assert server.stats()["faults"] == {kind: 1}


async def test_hang_fault_outlasts_the_client_timeout() -> None:
    async with sim(fault_hang=1.0) as (server, client):
        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await client.with_options(timeout=0.3).completions.create(
                model="sim-1", prompt="Say OK.", max_tokens=1
            )
        assert 0.25 < time.monotonic() - start < 2.0
        assert server.stats()["faults"] == {"hang": 1}


async def test_reset_fault_drops_the_connection() -> None:
    async with sim(fault_reset=1.0) as (server, client):
        with pytest.raises(openai.APIConnectionError):
            await client.completions.create(model="sim-1", prompt="Say OK.", max_tokens=1)
        assert server.stats()["by_status"] == {"reset": 1}


async def test_malformed_fault_sends_a_truncated_body() -> None:
    async with sim(fault_malformed=1.0) as (server, _):
        async with aiohttp.ClientSession() as session:
            body = {"model": "sim-1", "prompt": "Say OK.", "max_tokens": 4}
            async with session.post(server.base_url + "/completions", json=body) as answer:
                assert answer.status == 200
                raw = await answer.read()
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw)


async def test_fault_rates_are_seeded_shares() -> None:
    async with sim(fault_500=0.2, fault_503=0.1, seed=3) as (server, _):
        async with aiohttp.ClientSession() as session:
            body = orjson.dumps({"model": "sim-1", "prompt": "Say OK.", "max_tokens": 1})
            statuses = []
            for _ in range(400):
                async with session.post(server.base_url + "/completions", data=body) as answer:
                    statuses.append(answer.status)
        assert 0.14 < statuses.count(500) / 400 < 0.26
        assert 0.05 < statuses.count(503) / 400 < 0.15


async def test_latency_is_base_plus_per_token_with_jitter() -> None:
    async with sim(latency_base_s=0.1, latency_per_token_s=0.01) as (_, client):
        start = time.monotonic()
        result = await client.completions.create(model="sim-1", prompt="Say OK.", max_tokens=5)
        elapsed = time.monotonic() - start
        assert result.usage is not None
        assert elapsed >= 0.1 + 0.01 * result.usage.completion_tokens - 0.01
    async with sim(latency_base_s=0.02, latency_jitter=1.0) as (_, client):
        times = []
        for _ in range(8):
            start = time.monotonic()
            await client.completions.create(model="sim-1", prompt="Say OK.", max_tokens=1)
            times.append(time.monotonic() - start)
        assert max(times) > 1.5 * min(times)


async def test_debug_routes_only_when_asked() -> None:
    async with (
        sim() as (server, _),
        aiohttp.ClientSession() as session,
        session.get(server.base_url + "/sim/stats") as answer,
    ):
        assert answer.status == 404
    async with sim(debug_routes=True) as (server, client):
        await client.completions.create(model="sim-1", prompt="Say OK.", max_tokens=1)
        async with aiohttp.ClientSession() as session:
            url = server.base_url + "/sim/quality"
            async with session.get(url, params={"instruction": INSTRUCTION}) as answer:
                quality = await answer.json()
            async with session.get(server.base_url + "/sim/stats") as answer:
                stats = await answer.json()
        assert quality == {"quality": server.quality(INSTRUCTION), "task": "sum"}
        assert stats["requests"] == 1 and stats["by_status"] == {"200": 1}
        assert stats["by_route"] == {"/v1/completions": 1} and stats["tokens"] > 0
