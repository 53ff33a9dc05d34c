"""Studies as a chat model answers them: the simulator in its chatty mode writes a sentence
around the output unless asked for the output only (or shown bare outputs as earlier turns).

Against the in-process simulator: the plain chat format learns nothing and the study says so
(a `warning` event with example answers, the result's warnings); the output-only format and
scoring demos as earlier turns learn; the user's own candidates make a pure selection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from engine.app import StudyConfig, execute, prepare
from engine.app.prepare import prepare_resume
from engine.sim import SimConfig, SimServer, serve_sim
from engine.study import StudyResult
from engine.task import load_task, split_task

TASK = "larger_number"


@pytest.fixture
async def chatty() -> AsyncIterator[SimServer]:
    task = load_task(TASK, seed=3)
    async with serve_sim(SimConfig(tasks=(task,), seed=3, chatty=True)) as server:
        yield server


def config(base_url: str, tmp_path: Path, **changes: object) -> StudyConfig:
    settings: dict[str, object] = {
        "task": TASK,
        "base_url": base_url,
        "api": "chat",
        "journal": str(tmp_path / "journal.jsonl"),
        "no_cache": True,
        "scoring_size": 40,
        "test_size": 20,
        "initial_candidates": 6,
        "variant_rounds": 0,
        "include_human": True,
        "budget_scoring_calls": 120,
        "concurrency": 8,
        "seed": 3,
    }
    settings.update(changes)
    return StudyConfig.of(**settings)  # type: ignore[arg-type]


async def run(config: StudyConfig) -> StudyResult:
    return await execute(prepare(config), say=lambda _: None)


def journal(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.mark.anyio
async def test_a_plain_chat_prompt_learns_nothing_and_the_study_says_so(
    chatty: SimServer, tmp_path: Path
) -> None:
    result = await run(config(chatty.base_url, tmp_path, chat_format="plain", scoring_demos=0))
    assert result.ok and result.winner is not None
    assert all(candidate.mean == 0 for candidate in result.candidates if candidate.pulls)
    assert len(result.warnings) == 1 and "nothing is being learned" in result.warnings[0]
    assert "answer format" in result.warnings[0]
    events = journal(tmp_path / "journal.jsonl")
    warnings = [e for e in events if e["kind"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["code"] == "nothing_learned"
    shown = warnings[0]["examples"]
    assert len(shown) == 2
    for example in shown:  # the model's sentence beside the output it should have been
        assert str(example["answer"]).startswith("The output for")
        assert example["expected"] and example["expected"] in str(example["answer"])
    pulls = [e for e in events if e["kind"] == "pull_done"]
    assert pulls and all(str(e["answer"]).startswith("The output for") for e in pulls)
    assert all(len(str(e["answer"])) <= 200 for e in pulls)


@pytest.mark.anyio
async def test_the_output_only_format_and_demo_turns_learn(
    chatty: SimServer, tmp_path: Path
) -> None:
    output_only = await run(config(chatty.base_url, tmp_path / "a", scoring_demos=0))
    assert not output_only.warnings
    assert max(candidate.mean for candidate in output_only.candidates) > 0.5
    assert output_only.scoring["chat_format"] == "output-only"
    assert output_only.scoring["demos"] == []
    default = await run(config(chatty.base_url, tmp_path / "c"))
    assert len(default.scoring["demos"]) == 3  # chat's default: three demo turns
    turns = await run(config(chatty.base_url, tmp_path / "b", chat_format="plain", scoring_demos=3))
    assert not turns.warnings
    assert max(candidate.mean for candidate in turns.candidates) > 0.5
    demos = turns.scoring["demos"]
    assert len(demos) == 3
    splits = split_task(load_task(TASK, seed=3), seed=3, scoring_size=40, test_size=20)
    demo_inputs = {example.input for example in splits.demo}
    held = {example.input for example in splits.scoring + splits.test}
    assert all(d["input"] in demo_inputs and d["input"] not in held for d in demos)


@pytest.mark.anyio
async def test_own_candidates_alone_make_a_pure_selection(
    chatty: SimServer, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.jsonl"
    mine.write_text(
        "\n".join(
            orjson.dumps({"instruction": text, "name": f"v{i}"}).decode()
            for i, text in enumerate(
                [
                    "Write the larger of the two numbers.",
                    "Output the bigger number.",
                    "Write the smaller of the two numbers.",
                    "Repeat the input.",
                ]
            )
        )
    )
    result = await run(
        config(
            chatty.base_url,
            tmp_path,
            candidates=str(mine),
            initial_candidates=0,
            include_human=False,
            budget_scoring_calls=None,
        )
    )
    assert result.ok
    assert [c.origin for c in result.candidates] == ["user"] * 4
    assert result.spend.proposal_calls == 0
    assert result.winner is not None
    assert result.winner.instruction in {c.instruction for c in result.candidates}
    events = journal(tmp_path / "journal.jsonl")
    added = [e for e in events if e["kind"] == "candidate_added"]
    assert [e["name"] for e in added] == ["v0", "v1", "v2", "v3"]


@pytest.mark.anyio
async def test_a_warned_study_of_own_candidates_resumes_without_its_file(
    chatty: SimServer, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.txt"
    mine.write_text("Write the larger of the two numbers.\nRepeat the input.\nAdd them.\n")
    first = await run(
        config(
            chatty.base_url,
            tmp_path,
            candidates=str(mine),
            initial_candidates=0,
            include_human=False,
            chat_format="plain",
            scoring_demos=0,
            budget_scoring_calls=30,
        )
    )
    assert len(first.warnings) == 1 and first.spend.scoring_calls == 30
    mine.unlink()  # the candidates are in the journal now
    journal_path = tmp_path / "journal.jsonl"
    again = await execute(prepare_resume(journal_path, budget_scoring_calls=45), say=lambda _: None)
    assert again.ok and again.spend.scoring_calls == 45
    assert [c.origin for c in again.candidates] == ["user"] * 3
    assert len(again.warnings) == 1  # said once, across the resume
    kinds = [e["kind"] for e in journal(journal_path)]
    assert kinds.count("warning") == 1 and kinds.count("candidate_added") == 3
