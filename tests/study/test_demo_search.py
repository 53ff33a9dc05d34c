"""The demo search: demo sets drawn three ways, raced as candidates with their own demos, on
the record with them, resumed as they were; a journal without them reads as before."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from engine.app import optimize
from engine.app.prepare import prepare
from engine.app.records import open_record
from engine.cli import main
from engine.errors import ConfigError
from engine.propose import Templates
from engine.settings import StudyConfig
from engine.study.demos import diverse_set, random_set, right_set, round_plan
from engine.study.events import CandidateAdded, EvaluationDone, ProposalsDone
from engine.study.journal import read_events
from engine.study.prompting import ScoringPrompt
from engine.study.scoring import ClientScorer
from engine.task import Example

SEARCH = {
    "backend": "sim",
    "demo_search": True,
    "initial_candidates": 6,
    "variant_rounds": 2,
    "budget_scoring_calls": 400,
    "scoring_size": 80,
    "test_size": 30,
    "no_cache": True,
    "concurrency": 8,
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_demo_sets_are_drawn_at_random_spread_out_and_from_right_answers() -> None:
    pool = [Example(f"cat {i}", ("a",)) for i in range(6)] + [Example("dog bark loud", ("b",))]
    assert random_set(7, 3, random.Random(1)) == random_set(7, 3, random.Random(1))
    assert len(set(random_set(7, 3, random.Random(2)))) == 3
    assert random_set(2, 3, random.Random(0)) in {(0, 1), (1, 0)}  # no more than the pool
    spread = diverse_set(pool, 2, random.Random(0))
    assert 6 in spread  # the one unlike the others is taken second, whatever came first
    assert right_set({4: 0.0, 2: 1.0, 5: 1.0, 1: 0.5}, 2) == (2, 5)
    assert right_set({4: 0.0, 2: 1.0, 3: 0.0}, 3) == (2, 4, 3)  # filled by the others tried
    assert right_set({4: 0.0}, 3) == ()
    plan = round_plan(7, pool, 3, 5, number=1)
    assert [strategy for strategy, _ in plan.sets] == ["random", "diverse", "random", "diverse"]
    assert plan.bootstrap is not None and len(plan.bootstrap.examples) == 6
    assert round_plan(7, pool, 3, 5, number=1) == plan  # seeded by the round
    assert round_plan(7, pool, 3, 2, number=1).bootstrap is None


def test_a_candidates_own_demos_are_in_its_prompt() -> None:
    demos = (Example("hot", ("cold",)), Example("up", ("down",)))
    scorer = ClientScorer(None, metric="exact_match", api="completions", asking=ScoringPrompt(Templates()))  # type: ignore[arg-type]  # fmt: skip
    example = Example("big", ("small",))
    assert scorer.prompt("Opposite.", example) == "Opposite.\n\nInput: big\nOutput:"
    assert scorer.prompt("Opposite.", example, demos) == (
        "Opposite.\n\nInput: hot\nOutput: cold\n\nInput: up\nOutput: down\n\nInput: big\nOutput:"
    )


def test_the_demo_search_races_demo_sets_and_reports_them(tmp_path: Path) -> None:
    journal = tmp_path / "study.jsonl"
    result = optimize("antonyms", journal=str(journal), **SEARCH)
    assert result.status == "finished"
    events = read_events(journal)
    added = [e for e in events if isinstance(e, CandidateAdded) and e.origin == "demos"]
    assert added, "no demo set was proposed"
    for event in added:
        assert event.demos is not None and len(event.demos) == 3  # as many as the scoring demos
        assert event.parents and event.instruction == events_instruction(events, event.parents[0])
        assert len(set(event.demos)) == 3
    bootstraps = [e for e in events if isinstance(e, ProposalsDone) and e.proposal_kind == "demos"]
    assert bootstraps and all(e.calls == 6 for e in bootstraps)  # twice the set, per round
    with_demos = [c for c in result.candidates if c.origin == "demos"]
    assert any(c.pulls for c in with_demos)  # raced by the scheduler
    assert all(c.demos is not None and len(c.demos) == 3 for c in with_demos)
    shown = [c.to_json() for c in with_demos]
    assert all(
        len(row["demos"]) == 3 and {"input", "output"} <= row["demos"][0].keys() for row in shown
    )
    record = open_record(journal)
    assert all(record.arms[e.arm].demos == tuple(e.demos or ()) for e in added)
    assert all(record.arms[e.arm].demo_texts is not None for e in added)


def test_export_gives_each_candidates_own_demos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "study.jsonl"
    optimize("antonyms", journal=str(journal), **SEARCH)
    capsys.readouterr()
    assert main(["export", str(journal), "--jsonl", "--candidates"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    searched = [row for row in rows if row["origin"] == "demos"]
    assert searched and all(len(row["demos"]) == 3 for row in searched)
    assert all(row["demos"] is None for row in rows if row["origin"] != "demos")
    assert main(["export", str(journal), "--csv", "--candidates"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    cell = next(row["demos"] for row in table if row["origin"] == "demos")
    demos = [json.loads(one) for one in cell.split(" | ")]
    assert len(demos) == 3 and all(demo.keys() == {"input", "output"} for demo in demos)


def events_instruction(events: list[object], arm: int) -> str:
    return next(e.instruction for e in events if isinstance(e, CandidateAdded) and e.arm == arm)


def test_a_winner_with_its_own_demos_is_evaluated_with_them(tmp_path: Path) -> None:
    # seed 2: a demo set of a leader wins (the simulator's answers do not read the demos,
    # so which wins is a matter of the draw)
    journal = tmp_path / "study.jsonl"
    result = optimize("antonyms", journal=str(journal), seed=2, **{**SEARCH, "budget_scoring_calls": 600})  # fmt: skip
    winner = next(c for c in result.candidates if c.arm == result.winner_arm)
    assert winner.origin == "demos" and result.winner is not None
    assert result.winner.demos == winner.demo_texts
    evaluated = [e for e in read_events(journal) if isinstance(e, EvaluationDone) and e.role == "winner"]  # fmt: skip
    assert evaluated and all(e.demos is not None and len(e.demos) == 3 for e in evaluated)
    data = json.loads(json.dumps(result.to_json()))
    assert len(data["winner"]["demos"]) == 3


def test_a_resumed_demo_search_keeps_its_candidates_demos(tmp_path: Path) -> None:
    journal = tmp_path / "study.jsonl"
    optimize("antonyms", journal=str(journal), **{**SEARCH, "budget_scoring_calls": 200})
    before = [e for e in read_events(journal) if isinstance(e, CandidateAdded)]
    assert main(["resume", str(journal), "--budget-scoring-calls", "500"]) == 0
    after = [e for e in read_events(journal) if isinstance(e, CandidateAdded)]
    assert after[: len(before)] == before
    record = open_record(journal)
    assert [arm.demos for arm in record.arms[: len(before)]] == [
        tuple(e.demos) if e.demos is not None else None for e in before
    ]


def test_the_demo_search_is_refused_where_it_cannot_work() -> None:
    with pytest.raises(ConfigError, match="demo_search: the scoring prompt shows no demos"):
        prepare(StudyConfig.of(task="sum", demo_search=True, api="completions", backend="sim"))
    with pytest.raises(ConfigError, match="demo_search: a custom scorer builds its own prompts"):
        prepare(StudyConfig.of(task="sum", demo_search=True, scorer="x:y", backend="sim"))
    with pytest.raises(ConfigError, match="demo sets come in the variant rounds"):
        prepare(StudyConfig.of(task="sum", demo_search=True, variant_rounds=0, backend="sim"))
    config = StudyConfig.of(task="sum", demo_search=True, backend="sim")
    assert config.proposals.planned() == StudyConfig.of(task="sum").proposals.planned() + 2 * 3
