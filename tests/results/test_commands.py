"""`ape-engine studies`, `show` and `export` on a journal made by a short simulator study; bad
input is one line naming the file, exit code 2, no traceback."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from engine.app.records import read_record
from engine.cli import main
from engine.study.journal import read_records
from tests.results.conftest import copy_of

pytestmark = pytest.mark.e2e


def ape(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_studies_lists_each_study_of_a_state_folder(
    capsys: pytest.CaptureFixture[str], journal: Path, unfinished: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    copy_of(journal, state / "journals")
    copy_of(unfinished, state / "journals")
    (state / "journals" / "notes.jsonl").write_text("not a journal\n")
    code, out, err = ape(capsys, "studies", "--state-dir", str(state))
    study_id = read_record(journal).study_id
    assert code == 0
    assert out.count(study_id) == 2  # the finished study and its cut copy
    assert "finished" in out and "stopped" in out and "larger_number" in out
    assert "sim-1" in out and "0.9" in out  # the model, the winner's held-out score
    assert "skipped" in err and "notes.jsonl" in err


def test_show_renders_a_study_by_path_or_by_id(
    capsys: pytest.CaptureFixture[str], journal: Path, study_dir: Path
) -> None:
    record = read_record(journal)
    code, by_path, _ = ape(capsys, "show", str(journal), "--wrong", "2")
    assert code == 0
    code, by_id, _ = ape(capsys, "show", record.study_id, "--state-dir", str(study_dir))
    assert code == 0
    for shown in (by_path, by_id):
        assert f"Study {record.study_id}" in shown and "Held-out test pool" in shown
        assert "Candidates" in shown and "Spend" in shown
    # per candidate, the examples it got wrong, with what was expected (the task loaded)
    loser = next(arm for arm in record.ranked() if arm.pulls and arm.mean < 1)
    wrong = [r for r in record.answers if r.arm == loser.arm and r.pool == "scoring"]
    assert f"{sum(r.reward < 1 for r in wrong)} of {loser.pulls} wrong" in by_path


def test_show_of_a_study_still_going(capsys: pytest.CaptureFixture[str], unfinished: Path) -> None:
    unfinished.touch()
    code, out, _ = ape(capsys, "show", str(unfinished))
    assert code == 0 and ": running" in out


@pytest.mark.parametrize("command", ["show", "export"])
def test_bad_input_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    extra = ["--csv"] if command == "export" else []
    not_journal = tmp_path / "notes.jsonl"
    not_journal.write_text('{"hello": 1}\n')
    for reference, named in (
        (str(tmp_path / "gone.jsonl"), "gone.jsonl"),
        (str(not_journal), "notes.jsonl"),
        ("0123abcd", "0123abcd"),
    ):
        code, out, err = ape(capsys, command, reference, "--state-dir", str(tmp_path), *extra)
        assert code == 2 and named in err and not out
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_missing_state_folder_is_exit_code_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = ape(capsys, "studies", "--state-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in err and len(err.strip().splitlines()) == 1


def test_the_command_line_refuses_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine", "show", str(tmp_path / "gone.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "gone.jsonl" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_export_csv_has_one_row_per_candidate_and_example_scored(
    capsys: pytest.CaptureFixture[str], journal: Path, tmp_path: Path
) -> None:
    out_file = tmp_path / "answers.csv"
    code, _, err = ape(capsys, "export", str(journal), "--csv", "-o", str(out_file))
    assert code == 0 and "rows written" in err
    with out_file.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    records = read_records(journal)
    pulls = {(r["arm"], r["example"]) for r in records if r["kind"] == "pull_done"}
    evaluated = {
        (r["instruction"], r["example"]) for r in records if r["kind"] == "evaluation_done"
    }
    scoring = [row for row in rows if row["pool"] == "scoring"]
    test = [row for row in rows if row["pool"] == "test"]
    assert {(int(row["arm"]), int(row["example"])) for row in scoring} == pulls
    assert len(scoring) == len(pulls)
    assert {(row["instruction"], int(row["example"])) for row in test} == evaluated
    assert len(test) == len(evaluated)
    # each row scores its reward: the answer against what was expected
    for row in rows:
        assert row["answer"] and row["input"] and row["expected"]
        assert float(row["reward"]) == float(row["answer"] in row["expected"].split(" | "))


def test_export_jsonl_and_candidates(capsys: pytest.CaptureFixture[str], journal: Path) -> None:
    code, out, _ = ape(capsys, "export", str(journal), "--jsonl")
    assert code == 0
    answers = [orjson.loads(line) for line in out.splitlines()]
    record = read_record(journal)
    assert len(answers) == len(record.answers)
    assert all(isinstance(row["expected"], list) for row in answers)
    code, out, _ = ape(capsys, "export", str(journal), "--csv", "--candidates")
    candidates = list(csv.DictReader(io.StringIO(out)))
    assert [int(row["arm"]) for row in candidates] == [arm.arm for arm in record.arms]
    winner = candidates[record.winner or 0]
    assert winner["test_role"] == "winner" and float(winner["test_score"]) > 0
