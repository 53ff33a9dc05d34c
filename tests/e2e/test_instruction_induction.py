"""A short study on real instruction-induction tasks (../shared/data, skipped when absent): the
simulator serves the task file, the study loads the same file, proposes from its demos and
evaluates the winner beside the benchmark's human instruction on the task's execute split."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.app import StudyConfig, execute, prepare
from engine.propose import instruction_key
from engine.sim import SimConfig, serve_sim
from engine.task import load_task

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["antonyms", "larger_animal"])
async def test_a_short_study_on_an_instruction_induction_task(
    shared_data: Path, tmp_path: Path, name: str
) -> None:
    path = shared_data / "instruction_induction" / "induce" / f"{name}.json"
    task = load_task(str(path), seed=7)
    assert task.human_instruction and task.test_examples
    async with serve_sim(SimConfig(tasks=(task,), seed=7, debug_routes=True)) as server:
        config = StudyConfig.of(
            task=str(path),
            base_url=server.base_url,
            seed=7,
            scoring_size=100,
            test_size=40,
            initial_candidates=10,
            variant_rounds=1,
            budget_scoring_calls=400,
            concurrency=16,
            journal=str(tmp_path / "journal.jsonl"),
            no_cache=True,
        )
        prepared = prepare(config)
        result = await execute(prepared, say=lambda _: None)
        stats = server.stats()
    assert result.status == "finished", result.reason
    assert result.spend.scoring_calls <= 400 + 16
    assert result.winner is not None and result.human is not None
    assert result.human.instruction == task.human_instruction
    assert 0 < result.human.test_score <= 1  # the simulator knew every test input
    assert len(result.candidates) >= 10
    keys = [instruction_key(c.instruction) for c in result.candidates]
    assert len(set(keys)) == len(keys), "no two candidates are copies"
    for candidate in result.candidates:
        assert "\n" not in candidate.instruction and "Input:" not in candidate.instruction
    assert any(c.origin == "resample" for c in result.candidates)
    paid = result.spend.scoring_calls + result.spend.proposal_calls + result.spend.evaluation_calls
    # and the preflight's one-token call, made before the study
    assert stats["by_route"]["/v1/chat/completions"] == paid + 1
    assert stats["by_status"].get("200") == stats["requests"]
