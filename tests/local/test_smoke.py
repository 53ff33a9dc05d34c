"""The real-model smoke test of CI: SmolLM2-135M through the local server, with the engine's own
client and study. The log-probability of the right answer must beat a wrong one, and a short
study on a built-in task must finish with a winner scored on the held-out test pool."""

from __future__ import annotations

import argparse
import select
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.app.execute import run_study
from engine.cli.run import add_arguments, config_from_args
from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.llm.probing.capabilities import Capability
from engine.local import LocalSettings, serve_local
from engine.settings import StudyConfig
from engine.task import load_task

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.anyio
async def test_the_right_answer_outscores_a_wrong_one(smollm2: Any) -> None:
    task = load_task("antonyms", seed=0)
    examples = task.examples[:12]
    async with serve_local(LocalSettings(), model=smollm2) as server:
        endpoint = EndpointConfig(name="smollm2", base_url=server.base_url, model="smollm2")
        async with LLMClient(endpoint) as client:
            await client.require(Capability.PROMPT_LOGPROBS)
            margins = []
            for index, example in enumerate(examples):
                prompt = f"{task.human_instruction}\n\nInput: {example.input}\nOutput:"
                wrong = examples[(index + 1) % len(examples)].outputs[0]  # another word's antonym
                right_score = await client.continuation_logprob(prompt, " " + example.outputs[0])
                wrong_score = await client.continuation_logprob(prompt, " " + wrong)
                margins.append(right_score.mean_logprob - wrong_score.mean_logprob)
    wins = sum(margin > 0 for margin in margins)
    assert wins >= 8, margins  # measured: 10 of 12
    assert sum(margins) / len(margins) > 1.0, margins  # measured: about 4.5 nats


def test_a_short_study_with_the_local_model_finishes_with_a_result(
    smollm2_path: Path, tmp_path: Path
) -> None:
    import anyio

    config = StudyConfig.of(
        task="antonyms",
        backend="local",
        local_model=str(smollm2_path),
        model="smollm2",
        scoring="logprob",
        api="completions",
        local_threads=2,
        initial_candidates=3,
        variant_rounds=0,
        scoring_size=8,
        test_size=8,
        budget_scoring_calls=24,
        concurrency=8,
        no_cache=True,
        journal=str(tmp_path / "study.jsonl"),
    )
    result = anyio.run(run_study, config)
    assert result.ok, result.error
    assert result.winner is not None and result.human is not None
    assert result.winner.n == 8 and result.winner.failed == 0
    assert 0.0 < result.winner.test_score <= 1.0
    assert 0.0 < result.human.test_score <= 1.0
    assert result.spend.scoring_calls <= 24 + 8
    assert result.spend.proposal_calls >= 1
    assert len(result.candidates) >= 2
    header = orjson.loads((tmp_path / "study.jsonl").read_text().splitlines()[0])
    assert header["config"]["backend"]["kind"] == "local"


def test_run_backend_local_names_the_model_after_the_local_file() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--task", "sum", "--backend", "local"]))
    assert (config.backend.kind, config.backend.local_model, config.target.model) == (
        "local",
        "smollm2",
        "smollm2",
    )
    config = config_from_args(
        parser.parse_args(["--task", "sum", "--backend", "local", "--local-model", "/m/q.gguf"])
    )
    assert config.target.model == "q"
    with pytest.raises(Exception, match="backend"):
        StudyConfig.of(task="sum", backend="gpu")


def test_ape_engine_local_serves_until_terminated(smollm2_path: Path) -> None:
    command = [sys.executable, "-m", "engine", "local", "--model", str(smollm2_path)]
    process = subprocess.Popen(
        [*command, "--port", "0", "--context", "512", "--name", "tiny"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else ""
        assert "listening on http://127.0.0.1:" in line and "context 512" in line, line
        url = line.split()[-1]
        with urllib.request.urlopen(f"{url}/models", timeout=10) as answer:
            models = orjson.loads(answer.read())
        assert models["data"][0]["id"] == "tiny"
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
    missing = subprocess.run(
        [sys.executable, "-m", "engine", "local", "--model", "/no/such/model.gguf"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "no such file" in missing.stderr and "smollm2" in missing.stderr
