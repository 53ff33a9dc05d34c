"""Variants that learn from the answers, end to end on the in-process simulator: reflections and
merges join the running study with their kind and parents; a study resumed from its journal
keeps them (its state rebuilt from the journal alone) and pays for no call twice; a version-2
journal still resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from engine.app import StudyConfig, execute, prepare
from engine.app.execute import open_study
from engine.app.prepare import prepare_resume
from engine.app.records import read_record
from engine.study.journal import read_records, replay_journal
from engine.ui.html_report import render_html
from engine.ui.show import build_show
from tests.ui.test_show_lineage import rendered

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def config(tmp_path: Path, **changes: object) -> StudyConfig:
    settings: dict[str, object] = {
        "task": "larger_number",
        "journal": str(tmp_path / "journal.jsonl"),
        "no_cache": True,
        "scoring_size": 60,
        "test_size": 20,
        "initial_candidates": 6,
        "variant_rounds": 2,
        "variant_leaders": 2,
        "variants_per_leader": 2,
        "budget_scoring_calls": 700,
        "concurrency": 8,
        "seed": 5,
    }
    settings.update(changes)
    return StudyConfig.of(**settings)  # type: ignore[arg-type]


def journal(path: Path) -> list[dict[str, object]]:
    return read_records(path)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("variants", "kinds"),
    [("reflect", {"reflect"}), ("both", {"reflect", "resample"})],
)
async def test_reflections_join_the_running_study_with_their_kind_and_parents(
    tmp_path: Path, variants: str, kinds: set[str]
) -> None:
    result = await execute(prepare(config(tmp_path, variants=variants)), say=lambda _: None)
    assert result.ok
    derived = [c for c in result.candidates if c.parents]
    # a parent with no wrong answer yet is reworded: it has nothing to reflect on
    assert kinds <= {c.origin for c in derived} <= {"reflect", "resample"}
    assert all(0 <= parent < c.arm for c in derived for parent in c.parents)
    records = journal(tmp_path / "journal.jsonl")
    added = [r for r in records if r["kind"] == "candidate_added"]
    assert [r["origin"] for r in added if r.get("parents")] == [c.origin for c in derived]
    reflect_calls = [
        r for r in records if r["kind"] == "proposals_done" and r["proposal_kind"] == "reflect"
    ]
    assert reflect_calls and all(r["raw"] for r in reflect_calls)
    # what a reflection call costs is in the spend, and reported as the proposal calls' share
    data = result.to_json()
    assert data["proposals"]["reflect"]["calls"] == len(reflect_calls)
    assert data["proposals"]["reflect"]["seconds"] > 0
    assert 0 < data["proposal_share"]["tokens"] < 1
    assert data["spend"]["proposal_tokens"] == sum(t["tokens"] for t in data["proposals"].values())
    # the scoring kept going while reflections were written: pulls of the first batch's
    # candidates came in after the first reflection call was made
    first_round = next(i for i, r in enumerate(records) if r["kind"] == "variant_round_started")
    first_reflection = next(i for i, r in enumerate(records) if r.get("proposal_kind") == "reflect")
    assert first_round < first_reflection
    assert any(r["kind"] == "pull_done" for r in records[first_round:first_reflection])


@pytest.mark.anyio
async def test_pareto_parents_and_a_merge_each_round(tmp_path: Path) -> None:
    result = await execute(
        prepare(config(tmp_path, variants="both", parents="pareto", merge=True)),
        say=lambda _: None,
    )
    merges = [c for c in result.candidates if c.origin == "merge"]
    assert merges and all(len(c.parents) == 2 for c in merges)
    record = read_record(tmp_path / "journal.jsonl")
    text = rendered(build_show(record, top=5, wrong=0))
    assert "Lineage" in text and "merge with #" in text and "Proposal calls by kind" in text
    page = render_html(record)
    assert 'id="lineage-tree"' in page and "merge ←#" in page


@pytest.mark.anyio
async def test_a_resumed_study_with_reflections_rebuilds_what_they_read(tmp_path: Path) -> None:
    first = config(tmp_path, variants="reflect", budget_scoring_calls=330)
    done = await execute(prepare(first), say=lambda _: None)
    path = tmp_path / "journal.jsonl"
    assert any(c.origin == "reflect" for c in done.candidates)
    before = len(journal(path))
    async with open_study(
        prepare_resume(path, budget_scoring_calls=700), say=lambda _: None
    ) as study:
        replayed = study.state.book  # the state as the journal rebuilt it, before any call
        kept = [replayed.kept(arm.index) for arm in study.state.arms]
        rewards = replayed.rewards().copy()
        result = await study.run()
    live = study.state.book
    for arm, answers in enumerate(kept):  # the answers a reflection reads came from the journal
        assert live.kept(arm).wrong[: len(answers.wrong)] == answers.wrong
    scored = ~np.isnan(rewards)
    assert (live.rewards()[: rewards.shape[0], : rewards.shape[1]][scored] == rewards[scored]).all()
    assert result.ok and result.spend.scoring_calls <= 700
    records = journal(path)
    pulls = [(r["arm"], r["example"]) for r in records if r["kind"] == "pull_done"]
    assert len(pulls) == len(set(pulls))  # no call paid twice
    assert len(records) > before
    assert sum(r["kind"] == "variant_round_started" for r in records) == 2


@pytest.mark.anyio
async def test_a_version_2_journal_still_resumes(tmp_path: Path) -> None:
    path = tmp_path / "v2.jsonl"
    shutil.copy(FIXTURES / "journal_v2.jsonl", path)
    replay = replay_journal(path)
    assert replay.started.version == 2
    added = [e for e in replay.events if e.kind == "candidate_added"]
    assert {e.origin for e in added} <= {"initial", "resample", "human", "user"}  # type: ignore[union-attr]
    assert any(e.parents for e in added)  # type: ignore[union-attr]
    result = await execute(prepare_resume(path, budget_scoring_calls=200), say=lambda _: None)
    assert result.ok and result.spend.scoring_calls <= 200
    # the lines written after the version-2 header are version 3's and read back with it
    resumed = replay_journal(path)
    assert resumed.started.version == 2
    origins = [e.origin for e in resumed.events if e.kind == "candidate_added"]  # type: ignore[union-attr]
    assert "variant" not in origins and "proposal" not in origins
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    added = [line for line in lines if line["kind"] == "candidate_added"]
    assert {line["origin"] for line in added[:8]} == {"human", "proposal", "variant"}
