"""A study scored by checks: declared in a task file or the settings, refused where they cannot
apply, an answer they cannot read a 0 with its reason in the journal, `show` and `export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.app import optimize
from engine.app.prepare import prepare
from engine.app.records import open_record
from engine.cli import main
from engine.errors import ConfigError
from engine.settings import StudyConfig
from engine.study.events import EvaluationDone, PullDone, StudyStarted
from engine.study.journal import read_events
from engine.task.fingerprint import task_fingerprint

SMALL: dict[str, Any] = {
    "backend": "sim",
    "initial_candidates": 4,
    "variant_rounds": 0,
    "budget_scoring_calls": 80,
    "test_size": 10,
    "no_cache": True,
    "concurrency": 4,
}
SHAPE = {"kind": "json", "required": ["category", "urgency"], "compare": ["category"]}


def ticket_file(
    folder: Path, checks: list[dict[str, Any]] | None = None, name: str = "tickets"
) -> Path:
    examples = [
        {
            "input": {"title": f"order {i}", "body": f"{i} apples, please"},
            "output": {"category": ["billing", "shipping"][i % 2], "urgency": "low"},
        }
        for i in range(60)
    ]
    document: dict[str, Any] = {
        "name": "tickets",
        "human_instruction": "Classify the ticket.",
        "examples": examples,
    }
    if checks is not None:
        document["checks"] = checks
    path = folder / f"{name}.json"
    path.write_text(json.dumps(document, indent=1))
    return path


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_a_task_files_checks_score_the_study_and_define_it(tmp_path: Path) -> None:
    path = ticket_file(tmp_path, [SHAPE])
    prepared = prepare(StudyConfig.of(task=str(path), **SMALL))
    assert [c.name for c in prepared.checks] == ["json"] and prepared.rewards == "binary"
    assert prepared.config.scoring.checks == list(prepared.checks)  # on the record, as settings
    two = ticket_file(tmp_path, [SHAPE, {**SHAPE, "weight": 2}], name="two")
    assert prepare(StudyConfig.of(task=str(two), **SMALL)).rewards == "continuous"  # a mean
    without = prepare(StudyConfig.of(task=str(ticket_file(tmp_path, name="none")), **SMALL))
    assert task_fingerprint(prepared.task) != task_fingerprint(without.task)  # part of the task
    result = optimize(str(path), **SMALL)
    assert result.status == "finished" and result.winner is not None
    assert result.scoring["checks"][0]["kind"] == "json"
    assert result.winner.test_score > 0


def test_a_bad_check_in_a_task_file_names_the_file_and_its_place(tmp_path: Path) -> None:
    path = ticket_file(tmp_path, [SHAPE, {"kind": "regex", "pattern": "(("}])
    with pytest.raises(ConfigError, match=r"tickets.json: checks\[1\]: pattern: not a regular"):
        prepare(StudyConfig.of(task=str(path), **SMALL))
    path = ticket_file(tmp_path, [{"kind": "number"}])
    with pytest.raises(ConfigError, match=r"checks\[0\] \(number\): example examples\[\d+\]"):
        prepare(StudyConfig.of(task=str(path), **SMALL))


def test_checks_apply_to_execution_accuracy_only(tmp_path: Path) -> None:
    path = ticket_file(tmp_path, [SHAPE])
    with pytest.raises(ConfigError, match="checks: checks score the answer's text"):
        prepare(StudyConfig.of(task=str(path), scoring="logprob", **SMALL))
    with pytest.raises(ConfigError, match="a custom scorer scores the answers itself"):
        prepare(StudyConfig.of(task=str(path), scorer="x:y", **SMALL))


def test_an_answer_the_checks_cannot_read_is_a_0_with_its_reason_on_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ticket_file(tmp_path)
    journal = tmp_path / "cut.jsonl"
    # answers cut at 6 tokens are never whole JSON: every one is a 0 that says why
    result = optimize(str(path), checks=[SHAPE], answer_tokens=6, journal=str(journal), **SMALL)
    assert result.status == "finished"
    events = read_events(journal)
    started = next(e for e in events if isinstance(e, StudyStarted))
    assert started.task.rewards == "binary"
    scored = [e for e in events if isinstance(e, PullDone | EvaluationDone)]
    assert scored and all(e.reward == 0.0 and e.note.startswith("json: not JSON") for e in scored)
    record = open_record(journal)
    assert all(row.note.startswith("json: not JSON") for row in record.answers)
    assert main(["show", str(journal), "--top", "1", "--wrong", "1"]) == 0
    assert "json: not JSON" in capsys.readouterr().out
    assert main(["export", str(journal), "--jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(row["note"].startswith("json: not JSON") for row in rows)
