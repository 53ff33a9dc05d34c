"""Anthropic's Messages API as the client's second protocol, against the simulator's
``/v1/messages`` (which answers in Anthropic's documented shapes): the request's shape, the key
header, one answer per request, whitespace stop sequences applied by the client, 529 overloaded
retried, and a whole study on it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine.app import Endpoint, optimize_async
from engine.llm import EndpointConfig, LLMClient, RetryPolicy, Secret, ServerError
from engine.llm.errors import RequestRejectedError
from engine.llm.protocol.anthropic import messages_request
from engine.llm.protocol.classification import classify_response
from engine.sim import SimConfig, serve_sim

pytestmark = [pytest.mark.anyio]

SCORE = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Add the two numbers.\n\nInput: 2 3\nOutput:"},
]


def test_the_request_has_the_messages_api_shape() -> None:
    request = messages_request(
        "claude-x", SCORE, max_tokens=16, temperature=1.5, stop=["\n", "END"], n=1, extra=None
    )
    body = orjson.loads(request.body)
    assert request.path == "/messages"
    assert body["system"] == "Answer briefly." and body["max_tokens"] == 16
    assert body["messages"] == [SCORE[1]] and body["temperature"] == 1.0  # the API's range
    assert body["stop_sequences"] == ["END"]  # whitespace alone is refused by the API
    assert "n" not in body


def test_overloaded_529_is_retried_and_its_message_read() -> None:
    body = b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'
    error = classify_response(529, body, {}, endpoint="claude")
    assert isinstance(error, ServerError) and error.retryable
    assert "Overloaded" in str(error) and error.code == "overloaded_error"


async def test_a_client_speaks_it_with_x_api_key() -> None:
    async with serve_sim(SimConfig(tasks=("sum",), api_keys=("sk-ant-test-0123",))) as server:
        endpoint = EndpointConfig(
            name="claude",
            base_url=server.base_url,
            model="sim-1",
            api_key=Secret("sk-ant-test-0123"),
            protocol="anthropic",
        )
        async with LLMClient(endpoint) as client:
            answer = await client.chat(SCORE, max_tokens=16, temperature=0.0, stop=["\n"])
            several = await client.chat(SCORE, max_tokens=16, temperature=1.0, n=3)
            with pytest.raises(RequestRejectedError, match="no text completions"):
                await client.complete("x", max_tokens=1)
        routes = server.stats()["by_route"]
    assert answer.text.strip() and "\n" not in answer.text and answer.usage.prompt_tokens > 0
    assert len(several.texts) == 3
    assert routes == {"/v1/messages": 4}  # one answer per request, never the OpenAI routes


async def test_a_wrong_key_is_a_401_in_anthropics_shape() -> None:
    async with serve_sim(SimConfig(tasks=("sum",), api_keys=("right-key-0123",))) as server:
        endpoint = EndpointConfig(
            name="claude",
            base_url=server.base_url,
            model="sim-1",
            api_key=Secret("wrong-key-0123"),
            protocol="anthropic",
            retry=RetryPolicy(max_attempts=1),
        )
        async with LLMClient(endpoint) as client:
            with pytest.raises(RequestRejectedError) as caught:
                await client.chat(SCORE, max_tokens=4)
    assert caught.value.status == 401 and caught.value.code == "authentication_error"


async def test_a_study_runs_on_the_messages_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-study-0123")
    async with serve_sim(SimConfig(tasks=("sum",), api_keys=("sk-ant-study-0123",))) as server:
        result = await optimize_async(
            "sum",
            target=Endpoint("sim-1", base_url=server.base_url, protocol="anthropic"),
            initial_candidates=5,
            variant_rounds=0,
            budget_scoring_calls=100,
            no_cache=True,
        )
        routes = server.stats()["by_route"]
    assert result.status == "finished" and result.winner is not None
    assert set(routes) == {"/v1/models", "/v1/messages"}
