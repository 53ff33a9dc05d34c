"""The scorers against the simulator: execution accuracy, log-probability by echo and by chat
logprobs, and the custom `module:function` scorer with its errors."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.app.scoring import load_scorer_function
from engine.errors import ConfigError, ScorerError
from engine.llm import EndpointConfig, LLMClient
from engine.sim import SimConfig, SimServer, serve_sim
from engine.study.scoring import ClientScorer, CustomScorer, logprob_path
from engine.task import load_task
from engine.task.types import Task

pytestmark = pytest.mark.integration
TASK = load_task("larger_number", seed=4)
GOOD = TASK.human_instruction or "Write the larger of the two numbers."


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimServer, LLMClient, Task]]:
    async with serve_sim(SimConfig(tasks=(TASK,), seed=4)) as server:
        endpoint = EndpointConfig(name="target", base_url=server.base_url, model="sim-1")
        async with LLMClient(endpoint) as client:
            yield server, client, TASK


@pytest.mark.anyio
@pytest.mark.parametrize("api", ["chat", "completions"])
async def test_execution_accuracy_is_the_metric_of_the_greedy_answer(
    sim: tuple[SimServer, LLMClient, Task], api: str
) -> None:
    server, client, task = sim
    scorer = ClientScorer(client, metric=task.metric, api=api)
    rewards = [(await scorer.score(GOOD, e)).reward for e in task.examples[:60]]
    assert set(rewards) <= {0.0, 1.0}
    assert abs(sum(rewards) / 60 - server.quality(GOOD)) < 0.2
    again = await scorer.score(GOOD, task.examples[0])
    assert again.reward == rewards[0] and again.prompt_tokens > 0 and again.model == "sim-1"


@pytest.mark.anyio
async def test_log_probability_by_echo_is_exp_mean_logprob_of_the_accepted_output(
    sim: tuple[SimServer, LLMClient, Task],
) -> None:
    server, client, task = sim
    assert await logprob_path(client, "chat") == "echo"
    scorer = ClientScorer(client, metric=task.metric, mode="logprob")
    example = task.examples[3]
    score = await scorer.score(GOOD, example)
    direct = await client.continuation_logprob(
        scorer.prompt(GOOD, example), " " + example.outputs[0]
    )
    assert score.reward == pytest.approx(math.exp(direct.mean_logprob))
    assert 0 < score.reward < 1
    assert score.reward == pytest.approx(
        server.world.p_correct(GOOD, 0, task.examples.index(example))
    )


@pytest.mark.anyio
async def test_log_probability_by_chat_weights_an_accepted_answer_by_its_confidence(
    sim: tuple[SimServer, LLMClient, Task],
) -> None:
    _, client, task = sim
    chat = ClientScorer(client, metric=task.metric, mode="logprob", logprobs="chat")
    exact = ClientScorer(client, metric=task.metric)
    for example in task.examples[:20]:
        accepted = (await exact.score(GOOD, example)).reward
        weighted = (await chat.score(GOOD, example)).reward
        assert (weighted == 0.0) if accepted == 0 else (0 < weighted <= 1)


SCORERS = """
import asyncio

async def length(instruction, example, client):
    answer = await client.chat([{"role": "user", "content": instruction}], max_tokens=4)
    return min(1.0, len(answer.text) / 100)

async def too_big(instruction, example, client):
    return 3

async def broken(instruction, example, client):
    raise KeyError("oops")

def not_async(instruction, example, client):
    return 1.0

async def two(instruction, example):
    return 1.0
"""


@pytest.mark.anyio
async def test_a_custom_scorer_runs_with_the_client_and_its_tokens_are_counted(
    sim: tuple[SimServer, LLMClient, Task], tmp_path: Path
) -> None:
    _, client, task = sim
    path = tmp_path / "my_scorers.py"
    path.write_text(SCORERS)
    function = load_scorer_function(f"{path}:length")
    score = await CustomScorer(function, client, "my_scorers:length").score(GOOD, task.examples[0])
    assert 0 < score.reward <= 1 and score.prompt_tokens > 0 and score.completion_tokens > 0
    for name, message in (("too_big", r"returned 3 .*\[0, 1\]"), ("broken", "raised KeyError")):
        bad = CustomScorer(load_scorer_function(f"{path}:{name}"), client, name)
        with pytest.raises(ScorerError, match=message):  # the user's code, not the endpoint
            await bad.score(GOOD, task.examples[0])


def test_a_custom_scorer_that_cannot_be_used_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_scorers_mod.py").write_text(SCORERS)
    monkeypatch.chdir(tmp_path)
    assert load_scorer_function("my_scorers_mod:length").__name__ == "length"  # found in cwd
    cases = {
        "no_such_module_xyz:f": "importing 'no_such_module_xyz' failed: ModuleNotFoundError",
        "my_scorers_mod:absent": "has no attribute 'absent'",
        "my_scorers_mod:not_async": "must be an async function",
        "my_scorers_mod:two": "must take three arguments",
        "missing.py:f": "no file 'missing.py'",
        "justaname": "give it as 'module:function'",
    }
    for spec, message in cases.items():
        with pytest.raises(ConfigError, match=rf"^scorer '{spec}': .*{message}"):
            load_scorer_function(spec)
