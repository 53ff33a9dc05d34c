"""`studies`, `show` and `export` through a real pipe, as a script or a pager reads them: a table
at its natural width with one row a line (no cell cut to fit 80 columns), and `--format
json|tsv` whole for ``jq`` and ``cut``."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.app.records import read_record
from engine.cli.formats import CANDIDATE_COLUMNS, STUDY_COLUMNS

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def piped(*argv: str) -> str:
    """`ape-engine ARGV | cat`: standard output is a pipe, not a terminal, and the environment
    says nothing of a width (no COLUMNS)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "engine", *argv],
        capture_output=True,  # standard output a pipe
        env=env,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def grep(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


def test_studies_in_a_pipe_has_each_study_whole_on_one_line(study_dir: Path, journal: Path) -> None:
    record = read_record(journal)
    winner = record.arms[record.winner or 0]
    lines = grep(piped("studies", "--state-dir", str(study_dir)), record.task.name)
    assert len(lines) == 1  # `ape-engine studies | grep larger_number`
    (line,) = lines
    assert record.study_id in line and "finished" in line and record.model in line
    assert f"#{winner.arm} " in line
    held = record.held("winner")
    assert held is not None and f"{held.score:.3f}" in line
    assert f"{record.spend.scoring_calls:,} calls" in line


def test_show_in_a_pipe_has_every_title_and_row_whole(journal: Path) -> None:
    record = read_record(journal)
    out = piped("show", str(journal))
    assert grep(out, f"Study {record.study_id} on task {record.task.name!r}: {record.status}")
    assert grep(out, f"journal {journal}")
    for arm in record.ranked()[:10]:  # the leaderboard: each candidate's row on one line
        rows = [line for line in out.splitlines() if re.match(rf"│ +{arm.arm} │", line)]
        assert rows and arm.state in rows[0] and f" {arm.pulls} " in rows[0]
        assert f"{arm.mean:.3f}" in rows[0]
        assert arm.instruction[:40] in rows[0]
    assert all(len(line) < 400 for line in out.splitlines())  # as wide as the tables, no wider


def test_studies_json_is_one_array_for_jq(study_dir: Path, journal: Path) -> None:
    record = read_record(journal)
    listed = json.loads(piped("studies", "--state-dir", str(study_dir), "--format", "json"))
    assert [study["study_id"] for study in listed] == [record.study_id]
    (study,) = listed
    assert set(study) == set(STUDY_COLUMNS)
    winner = record.arms[record.winner or 0]
    assert study["winner"] == winner.arm and study["winner_instruction"] == winner.instruction
    assert study["status"] == "finished" and study["scoring_calls"] == record.spend.scoring_calls
    held = record.held("winner")
    assert held is not None and study["test_score"] == pytest.approx(held.score, abs=1e-6)


def test_studies_tsv_has_a_header_and_a_line_a_study(study_dir: Path, journal: Path) -> None:
    record = read_record(journal)
    lines = piped("studies", "--state-dir", str(study_dir), "--format", "tsv").splitlines()
    assert lines[0].split("\t") == list(STUDY_COLUMNS) and len(lines) == 2
    row = dict(zip(STUDY_COLUMNS, lines[1].split("\t"), strict=True))
    assert row["study_id"] == record.study_id and row["task"] == record.task.name


def test_show_json_and_tsv_give_the_study_whole(journal: Path) -> None:
    record = read_record(journal)
    study = json.loads(piped("show", str(journal), "--format", "json"))
    assert study["study_id"] == record.study_id and study["status"] == record.status
    assert [c["arm"] for c in study["candidates"]] == [arm.arm for arm in record.ranked()]
    assert {row["role"] for row in study["held_out"]} == {row.role for row in record.held_out}
    assert study["spend"]["scoring_calls"] == record.spend.scoring_calls
    rows = list(csv.DictReader(io.StringIO(piped("show", str(journal), "--format", "tsv")),
                               dialect="excel-tab"))  # fmt: skip
    assert list(rows[0]) == list(CANDIDATE_COLUMNS)
    assert [int(row["arm"]) for row in rows] == [arm.arm for arm in record.ranked()]
    assert [row["instruction"] for row in rows] == [arm.instruction for arm in record.ranked()]


@pytest.mark.parametrize("form", ["json", "tsv"])
def test_export_takes_the_same_formats(journal: Path, form: str) -> None:
    record = read_record(journal)
    out = piped("export", str(journal), "--format", form)
    if form == "json":
        rows = json.loads(out)
    else:
        rows = list(csv.DictReader(io.StringIO(out), dialect="excel-tab"))
    assert len(rows) == len(record.answers)
    assert {str(row["arm"]) for row in rows} >= {str(arm.arm) for arm in record.arms if arm.pulls}
