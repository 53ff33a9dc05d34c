"""`read_record` replays a journal into what the result commands show: the bounds the study
ran with, the held-out scores, a timeline, and one row per answer scored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from engine.app.records import read_record
from engine.errors import JournalError
from engine.study.journal import read_records
from engine.task import load_task, score, split_task
from engine.task.types import Example


def test_a_finished_study_reads_back_as_it_ended(journal: Path) -> None:
    record = read_record(journal)
    final = read_records(journal)[-1]["result"]
    assert record.status == "finished" and record.winner == final["winner"]["arm"]
    # the intervals are the study's own: the policy is rebuilt with its settings
    for arm, ended in zip(record.arms, final["candidates"], strict=True):
        assert (arm.mean, arm.lower, arm.upper, arm.pulls) == pytest.approx(
            (ended["mean"], ended["lower"], ended["upper"], ended["pulls"]), abs=1e-6
        )
    winner = record.held("winner")
    assert winner is not None and winner.score == pytest.approx(final["winner"]["test_score"])
    assert winner.n == 20 and record.held("human") is not None
    assert record.spend.scoring_calls == final["spend"]["scoring_calls"]


def test_every_answer_is_a_row_and_the_timeline_ends_where_the_study_did(journal: Path) -> None:
    record = read_record(journal)
    scoring = [row for row in record.answers if row.pool == "scoring"]
    test = [row for row in record.answers if row.pool == "test"]
    assert len(scoring) == record.spend.scoring_calls
    assert len(test) == record.spend.evaluation_calls
    assert all(row.answer for row in record.answers)  # the simulator always answers
    assert not record.with_task and all(row.input == "" for row in record.answers)
    last = record.timeline[-1]
    assert last.scoring_calls == record.spend.scoring_calls
    assert last.leader == record.ranking[0]
    assert [p.scoring_calls for p in record.timeline] == sorted(
        p.scoring_calls for p in record.timeline
    )


def test_with_the_pools_rows_carry_inputs_and_expected_outputs(journal: Path) -> None:
    record = read_record(journal)
    task = load_task("larger_number", seed=3)
    splits = split_task(task, seed=3, scoring_size=40, test_size=20)
    full = read_record(journal, splits=splits)
    assert len(full.answers) == len(record.answers) and full.with_task
    # the rows hold the examples the study scored: each answer scores its reward against them
    for row in full.answers:
        example = Example(row.input, row.expected)
        assert row.input and score(task.metric, row.answer, example) == row.reward


def test_a_journal_without_its_final_record_is_stopped(unfinished: Path) -> None:
    record = read_record(unfinished)
    assert record.status == "stopped"
    unfinished.touch()  # written to just now: its study is running
    assert read_record(unfinished).status == "running"


def test_bad_journals_are_refused_with_their_name(tmp_path: Path, journal: Path) -> None:
    with pytest.raises(JournalError, match=r"missing\.jsonl"):
        read_record(tmp_path / "missing.jsonl")
    other = tmp_path / "notes.jsonl"
    other.write_bytes(orjson.dumps({"hello": 1}) + b"\n")
    with pytest.raises(JournalError, match=r"notes\.jsonl"):
        read_record(other)


def test_the_record_imports_without_rich_or_matplotlib() -> None:
    code = (
        "import sys, engine.study.record; "
        "print([m for m in sys.modules if m.split('.')[0] in ('rich', 'matplotlib')])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
