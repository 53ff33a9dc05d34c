"""The numbers and words a study shows agree with each other and with what happened (issue 26,
item 8): a warning said early is not read as a count of the end; an all-zero study does not
say its winner was identified; the calls in flight are counted against the concurrency that
bounds them; no candidate of an ended study is "active"; a zero budget says nothing was
scored; the held-out heading names only the instructions evaluated."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.app import optimize
from engine.app.records import read_record
from engine.study.snapshot import ProposalRow, ThroughputRow
from engine.task import load_task
from engine.ui.html_report import render_html
from engine.ui.render import throughput_panel
from engine.ui.show import build_show
from tests.ui.snapshots import make_snapshot, render

pytestmark = pytest.mark.e2e

SMALL: dict[str, Any] = {
    "backend": "sim",
    "initial_candidates": 4,
    "variant_rounds": 0,
    "scoring_size": 30,
    "test_size": 10,
    "no_cache": True,
    "concurrency": 4,
    "say": lambda _: None,
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_an_all_zero_study_says_nothing_was_learned_and_counts_what_it_did() -> None:
    result = optimize("larger_number", metric=lambda answer, example: 0.0, **SMALL)
    answers = result.spend.scoring_calls
    assert result.status == "finished" and answers > 0
    # the stop: not "the winner is identified" for a leader at 0.000
    assert result.reason == (
        f"nothing was learned: every one of the {answers:,} answers scored 0, so no candidate "
        "can be told from another"
    )
    (warning,) = result.warnings
    # said once, when the first batch was in: its count is of that moment, and says so
    assert warning.startswith("nothing is being learned: the first ") and "so far" not in warning
    said = int(warning.removeprefix("nothing is being learned: the first ").split()[0])
    assert 0 < said <= answers


def test_the_calls_in_flight_are_counted_against_the_concurrency_that_bounds_them() -> None:
    """Eight scoring calls at concurrency 8, and three proposal calls beside them: the screen
    said "in flight 11 of concurrency 8"."""
    snapshot = make_snapshot()
    snapshot = replace(
        snapshot,
        throughput=replace(snapshot.throughput, in_flight=11, concurrency=8),
        proposals=replace(snapshot.proposals, waiting=3),
    )
    assert isinstance(snapshot.throughput, ThroughputRow)
    assert isinstance(snapshot.proposals, ProposalRow)
    panel = render(throughput_panel(snapshot, 60), 60, 8)
    assert "in flight 8 of concurrency 8" in panel and "in flight 11" not in panel


def test_no_candidate_of_an_ended_study_is_active(tmp_path: Path) -> None:
    journal = tmp_path / "study.jsonl"
    result = optimize(
        "larger_number", budget_scoring_calls=40, journal=str(journal), **SMALL
    )  # stopped by its budget: the candidates it did not eliminate are left open
    states = {c.state for c in result.candidates}
    assert "active" not in states and "open" in states
    record = read_record(journal)
    assert [arm.state for arm in record.arms] == [c.state for c in result.candidates]
    shown = render(build_show(record), 200, 200)
    board = shown[shown.index("Candidates") : shown.index("Spend")]
    assert " open " in board and " active " not in board


def test_a_zero_budget_says_that_nothing_was_scored() -> None:
    result = optimize("larger_number", budget_scoring_calls=0, **SMALL)
    assert result.spend.scoring_calls == 0
    assert result.reason == (
        "budget scoring_calls reached (0 of 0): no candidate was scored, so none was compared "
        "with another (raise budget_scoring_calls to score them)"
    )


def test_the_held_out_heading_names_only_the_instructions_evaluated(tmp_path: Path) -> None:
    """A task with no human instruction (examples of the user's) is not said to be compared
    with one."""
    task = load_task("larger_number", seed=3)
    examples = [{"input": e.input, "output": list(e.outputs)} for e in task.examples[:80]]
    without = tmp_path / "without.jsonl"
    optimize(examples, budget_scoring_calls=40, journal=str(without), **SMALL)
    page = render_html(read_record(without))
    heading = page[page.index('<section id="held-out">') :].split("</h2>")[0]
    pick = "winner" if read_record(without).certificate.proven else "best so far"  # type: ignore[union-attr]
    assert f"the {pick} against the runner-up" in heading and "human" not in heading
    with_human = tmp_path / "with.jsonl"
    optimize(examples, budget_scoring_calls=40, human_instruction="Pick the larger.",
             journal=str(with_human), **SMALL)  # fmt: skip
    page = render_html(read_record(with_human))
    heading = page[page.index('<section id="held-out">') :].split("</h2>")[0]
    pick = "winner" if read_record(with_human).certificate.proven else "best so far"  # type: ignore[union-attr]
    assert f"the {pick} against the runner-up and the human instruction" in heading
