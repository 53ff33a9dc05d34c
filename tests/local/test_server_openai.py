"""The local model's server against the official `openai` SDK (as tests/sim does for the
simulator): calls, echo log-probabilities, chat template, error types, the bounded queue's 429,
rate-limit headers, one call at a time; and the engine's capability probe, which accepts this
server and refuses one that shifts echoed log-probabilities by a token as llama.cpp's own does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
import openai
import pytest

from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.llm.probing.capabilities import Capability
from engine.local import LocalServer, LocalSettings, serve_local
from engine.serving import OpenAIServer, Scored, ServerSettings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PROMPT = "Write a word that means the opposite of the input word.\n\nInput: hot\nOutput:"


@asynccontextmanager
async def local(
    model: Any, **settings: Any
) -> AsyncIterator[tuple[LocalServer, openai.AsyncOpenAI]]:
    async with serve_local(LocalSettings(**settings), model=model) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-local", max_retries=0)
        try:
            yield server, client
        finally:
            await client.close()


async def test_models_name_the_real_model_not_a_simulator(smollm2: Any) -> None:
    async with local(smollm2) as (_, client):
        models = await client.models.list()
        assert [m.id for m in models.data] == ["smollm2"]
        assert "llama.cpp" in models.data[0].owned_by
        assert "simulator" not in models.data[0].owned_by
        assert (await client.models.retrieve("smollm2")).id == "smollm2"


async def test_echo_logprobs_cover_the_prompt_with_offsets(smollm2: Any) -> None:
    async with local(smollm2) as (_, client):
        text = PROMPT + " cold"
        completion = await client.completions.create(
            model="smollm2", prompt=text, max_tokens=0, echo=True, logprobs=1
        )
        choice = completion.choices[0]
        assert choice.text == text
        block = choice.logprobs
        assert block is not None and block.tokens and block.token_logprobs and block.text_offset
        assert "".join(block.tokens) == text
        assert block.token_logprobs[0] is None
        assert all(v is not None and v <= 0 for v in block.token_logprobs[1:])
        for token, offset in zip(block.tokens, block.text_offset, strict=True):
            assert text[offset : offset + len(token)] == token
        assert block.tokens[-1] == " cold"
        direct = smollm2.prompt_logprobs(text, 0)
        assert block.token_logprobs[-1] == pytest.approx(direct[-1].logprob, abs=1e-6)
        assert completion.usage is not None and completion.usage.completion_tokens == 0
        assert completion.usage.prompt_tokens == len(block.tokens)


async def test_completions_and_chat_generate_with_the_gguf_template(smollm2: Any) -> None:
    async with local(smollm2) as (_, client):
        completion = await client.completions.create(
            model="smollm2", prompt=[PROMPT, "1, 2, 3,"], max_tokens=8, temperature=0,
            stop=["\n"], n=2, logprobs=2,
        )  # fmt: skip
        assert [c.index for c in completion.choices] == [0, 1, 2, 3]
        # temperature 0: the two choices of one prompt agree
        assert completion.choices[0].text == completion.choices[1].text
        for choice in completion.choices:
            assert "\n" not in choice.text
            assert choice.logprobs is not None
            assert "".join(choice.logprobs.tokens or []) == choice.text
        assert smollm2.chat_template_source == "gguf"
        assert "<|im_start|>" in smollm2.metadata["tokenizer.chat_template"]
        chat = await client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": "Say the word yes."}],
            max_tokens=12, temperature=0, logprobs=True, top_logprobs=2,
        )  # fmt: skip
        choice = chat.choices[0]
        assert choice.message.content and choice.finish_reason in ("stop", "length")
        assert "<|im_end|>" not in choice.message.content  # the template's end is a stop
        assert choice.logprobs is not None and choice.logprobs.content
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
        assert len(choice.logprobs.content[0].top_logprobs) == 2
        assert chat.usage is not None and chat.usage.completion_tokens <= 12
        seeded = [
            await client.chat.completions.create(
                model="smollm2",
                messages=[{"role": "user", "content": "Name a colour."}],
                max_tokens=6,
                temperature=1.0,
                seed=7,
                n=2,
            )
            for _ in range(2)
        ]
        assert [c.message.content for c in seeded[0].choices] == [
            c.message.content for c in seeded[1].choices
        ]


async def test_errors_parse_into_the_sdk_exception_types(smollm2: Any) -> None:
    async with local(smollm2) as (_, client):
        with pytest.raises(openai.NotFoundError) as missing:
            await client.completions.create(model="gpt-4", prompt="x", max_tokens=1)
        assert missing.value.code == "model_not_found" and "smollm2" in missing.value.message
        with pytest.raises(openai.BadRequestError) as long:
            await client.completions.create(model="smollm2", prompt="word " * 1500, max_tokens=1)
        assert long.value.code == "context_length_exceeded"
        with pytest.raises(openai.BadRequestError) as bad:
            await client.completions.create(model="smollm2", prompt="x", max_tokens=-1)
        assert bad.value.param == "max_tokens"
        with pytest.raises(openai.BadRequestError) as suffix:
            await client.completions.create(model="smollm2", prompt="x", suffix="y", max_tokens=1)
        assert suffix.value.param == "suffix"
        # the server still answers after errors
        ok = await client.completions.create(model="smollm2", prompt="x", max_tokens=1)
        assert len(ok.choices) == 1


async def test_a_full_queue_answers_429_with_retry_after(smollm2: Any) -> None:
    async with local(smollm2, queue=1) as (server, client):
        first = client.completions.create(
            model="smollm2", prompt=PROMPT, max_tokens=48, temperature=0
        )
        async with anyio.create_task_group() as group:
            results: list[Any] = []

            async def run_first() -> None:
                results.append(await first)

            group.start_soon(run_first)
            for _ in range(10_000):  # until the first call holds the queue's one place
                if server.local.pending:
                    break
                await anyio.sleep(0.001)
            assert server.local.pending == 1
            with pytest.raises(openai.RateLimitError) as limited:
                await client.completions.create(model="smollm2", prompt="x", max_tokens=1)
        assert results and results[0].choices[0].text is not None
        error = limited.value
        assert error.code == "rate_limit_exceeded" and "--queue 1" in error.message
        assert int(error.response.headers["retry-after"]) >= 1
        assert int(error.response.headers["retry-after-ms"]) >= 1
        assert server.local.rejected == 1 and server.local.pending == 0
        assert server.stats()["by_status"] == {"200": 1, "429": 1}


async def test_concurrent_calls_run_one_at_a_time_and_agree_with_sequential(
    smollm2: Any,
) -> None:
    prompts = [PROMPT.replace("hot", word) for word in ("up", "tall", "fast", "open")]
    async with local(smollm2, requests_per_minute=600) as (server, client):
        sequential = [
            (
                await client.completions.create(
                    model="smollm2", prompt=p, max_tokens=0, echo=True, logprobs=1
                )
            )
            .choices[0]
            .logprobs
            for p in prompts
        ]
        concurrent: list[Any] = [None] * len(prompts)

        async def one(index: int) -> None:
            raw = await client.completions.with_raw_response.create(
                model="smollm2", prompt=prompts[index], max_tokens=0, echo=True, logprobs=1
            )
            assert "x-ratelimit-limit-requests" in raw.headers
            concurrent[index] = raw.parse().choices[0].logprobs

        async with anyio.create_task_group() as group:
            for index in range(len(prompts)):
                group.start_soon(one, index)
        for before, during in zip(sequential, concurrent, strict=True):
            assert during.token_logprobs == pytest.approx(before.token_logprobs, abs=1e-4)
        assert server.local.calls >= 2 * len(prompts)
        assert server.local.pending == 0


class _ShiftedEcho:
    """llama-cpp-python's server for a model without BOS: each echoed prompt token gets the
    log-prob of the token after it, and max_tokens=0 means "no limit"."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def tokenize(self, text: str) -> list[str]:
        result: list[str] = self.inner.tokenize(text)
        return result

    async def generate(self, request: Any) -> Any:
        if request.max_tokens == 0:
            request = replace(request, max_tokens=8)
        return await self.inner.generate(request)

    async def prompt_logprobs(self, prompt: str, top: int) -> Sequence[Scored]:
        scored = list(await self.inner.prompt_logprobs(prompt, top))
        return [
            Scored(s.token, scored[i + 1].logprob if i + 1 < len(scored) else -1.0)
            for i, s in enumerate(scored)
        ]


async def test_the_probe_accepts_this_server_and_refuses_a_shifted_echo(smollm2: Any) -> None:
    async with serve_local(LocalSettings(), model=smollm2) as server:
        endpoint = EndpointConfig(name="local", base_url=server.base_url, model="smollm2")
        async with LLMClient(endpoint) as client:
            await client.require(Capability.PROMPT_LOGPROBS)
            assert (await client.capabilities()).echo_max_tokens == 0
            assert not (await client.capabilities()).suffix  # no fill in the middle
            shifted_backend = _ShiftedEcho(server.local)
    shifted = OpenAIServer(ServerSettings(model="smollm2"), shifted_backend)
    await shifted.start()
    try:
        endpoint = EndpointConfig(name="stock", base_url=shifted.base_url, model="smollm2")
        async with LLMClient(endpoint) as client:
            capabilities = await client.capabilities()
            assert not capabilities.prompt_logprobs
            notes = " ".join(capabilities.notes)
            assert "reads 0 as no limit" in notes and "shifted by one token" in notes
            with pytest.raises(Exception, match="cannot provide prompt logprobs"):
                await client.require(Capability.PROMPT_LOGPROBS)
    finally:
        await shifted.stop()
