"""A reflective variant round on a real model: SmolLM2-135M (llama.cpp) proposes and answers.

SmolLM2 writes poor instructions; what is checked is the path, not the quality: the round's
reflection call is made with the parent's wrong answers, its answers are recorded, and each is
either a candidate of kind "reflect" naming its parent or rejected with a known reason."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from engine.app.execute import run_study
from engine.propose.normalise import REJECTIONS
from engine.settings import StudyConfig
from engine.study.journal import read_records
from tests.local.conftest import smollm2_path  # noqa: F401 -- the session fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_reflection_on_smollm2_runs_and_its_answers_are_handled(
    smollm2_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    mine = tmp_path / "mine.txt"
    mine.write_text("Write the opposite of the word.\nGive a word that means the opposite.\n")
    journal = tmp_path / "study.jsonl"
    config = StudyConfig.of(
        task="antonyms",
        backend="local",
        local_model=str(smollm2_path),
        local_threads=2,
        model="smollm2",
        api="chat",
        candidates=str(mine),
        initial_candidates=0,
        variants="reflect",
        variant_rounds=1,
        variant_leaders=1,
        variants_per_leader=2,
        scoring_demos=0,
        scoring_size=12,
        test_size=2,
        budget_scoring_calls=20,
        concurrency=2,
        no_cache=True,
        journal=str(journal),
    )
    result = anyio.run(run_study, config)
    assert result.ok, result.error
    records = read_records(journal)
    (reflection,) = [r for r in records if r.get("proposal_kind") == "reflect"]
    assert reflection["generated"] == 2 and len(reflection["raw"]) == 2
    assert set(reflection["reasons"]) <= set(REJECTIONS)
    kept = [c for c in result.candidates if c.origin == "reflect"]
    assert len(kept) + reflection["rejected"] + reflection["duplicates"] == 2
    assert all(c.parents and c.parents[0] in (0, 1) for c in kept)
    assert result.to_json()["proposals"]["reflect"]["calls"] == 1
