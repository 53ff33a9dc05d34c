"""The client adapts to what an endpoint takes, learned once from its refusals, against the
simulator acting out real servers (`engine.serving.quirks`): one choice per request (refused
like llama-server, or ignored like llama-cpp-python's server) and OpenAI's reasoning models
(max_completion_tokens, no temperature, no stop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from engine.llm import EndpointConfig, LLMClient, RequestRejectedError
from engine.sim import SimConfig, SimServer, serve_sim

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PROPOSE = [{"role": "user", "content": "Input: 2 3\nOutput: 5\n\nThe instruction was"}]
SCORE = [{"role": "user", "content": "Add the two numbers.\n\nInput: 2 3\nOutput:"}]


@asynccontextmanager
async def quirky(**quirks: Any) -> AsyncIterator[tuple[SimServer, LLMClient]]:
    async with serve_sim(SimConfig(tasks=("sum",), debug_routes=True, **quirks)) as server:
        endpoint = EndpointConfig(name="target", base_url=server.base_url, model="sim-1")
        async with LLMClient(endpoint) as client:
            yield server, client


def refusals(server: SimServer) -> int:
    return int(server.stats()["by_status"].get("400", 0))


@pytest.mark.parametrize("choices", ["refuse", "ignore"])
async def test_one_choice_per_request_is_learned_once(choices: str) -> None:
    async with quirky(choices=choices) as (server, client):
        first = await client.chat(PROPOSE, max_tokens=20, temperature=1.0, n=5)
        assert len(first.texts) == 5 and all(first.texts)
        assert client.adapting.dialect.choices is False
        before = (refusals(server), server.stats()["requests"])
        second = await client.chat(PROPOSE, max_tokens=20, temperature=1.0, n=3)
        assert len(second.texts) == 3
        # learned: three calls of one choice each, no refusal on the way
        assert (refusals(server), server.stats()["requests"]) == (before[0], before[1] + 3)
        assert client.stats().failed == 0


async def test_several_choices_are_kept_where_served() -> None:
    async with quirky() as (server, client):
        answer = await client.chat(PROPOSE, max_tokens=20, temperature=1.0, n=4)
        assert len(answer.texts) == 4 and server.stats()["requests"] == 1
        assert client.adapting.dialect.choices is True


async def test_a_reasoning_model_gets_max_completion_tokens_and_no_temperature_or_stop() -> None:
    async with quirky(reasoning=True) as (server, client):
        answer = await client.chat(SCORE, max_tokens=16, temperature=0.0, stop=["\n"])
        assert answer.text.strip() and "\n" not in answer.text  # the stop applied by the client
        dialect = client.adapting.dialect
        assert dialect.max_tokens_field == "max_completion_tokens"
        assert not dialect.temperature and not dialect.stop
        assert refusals(server) == 3  # one refusal per parameter, once
        await client.chat(SCORE, max_tokens=16, temperature=0.0, stop=["\n"])
        assert refusals(server) == 3 and client.stats().failed == 0
        assert "max_completion_tokens" in client.adapting.notes[0]


async def test_a_value_out_of_range_is_not_adapted_away() -> None:
    async with quirky() as (_, client):
        with pytest.raises(RequestRejectedError, match="temperature"):
            await client.chat(SCORE, max_tokens=4, temperature=5.0)
        assert client.adapting.dialect.temperature
