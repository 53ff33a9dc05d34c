"""`ape-engine export JOURNAL|ID --csv|--jsonl|--format csv|tsv|jsonl|json`: a study's answers
as rows, for a spreadsheet or a dataframe: one row per (candidate, example) scored on the
scoring pool and per (instruction, example) of the evaluation on the test pool, each with its
candidate's text, mean and interval; `--candidates` writes one row per candidate instead.
Inputs and expected outputs are filled in when the study's task loads as it was."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.app.records import open_record
from engine.cli.formats import CANDIDATE_COLUMNS, candidate_rows, render_rows
from engine.cli.studies import add_state_dir
from engine.errors import ConfigError
from engine.study.record import StudyRecord

__all__ = ["ANSWER_COLUMNS", "CANDIDATE_COLUMNS", "ERROR_EXIT", "add_arguments", "main"]

ERROR_EXIT = 2

ANSWER_COLUMNS: tuple[str, ...] = (
    "study_id",
    "arm",
    "instruction",
    "origin",
    "candidate_mean",
    "candidate_lower",
    "candidate_upper",
    "pool",
    "role",
    "example",
    "input",
    "expected",
    "answer",
    "reward",
    "cached",
    "note",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="JOURNAL|ID", help="a journal file, or a study's id")
    form = parser.add_mutually_exclusive_group(required=True)
    form.add_argument("--csv", action="store_true", help="comma-separated, with a header row")
    form.add_argument("--jsonl", action="store_true", help="one JSON object per line")
    form.add_argument(
        "--format",
        choices=("csv", "tsv", "jsonl", "json"),
        help="csv, tsv (tab-separated), jsonl, or json (one array)",
    )
    parser.add_argument(
        "--candidates", action="store_true", help="one row per candidate, not per answer"
    )
    parser.add_argument("-o", "--out", metavar="FILE", help="write here (standard output)")
    add_state_dir(parser)


def answer_rows(record: StudyRecord) -> list[dict[str, Any]]:
    rows = []
    for row in record.answers:
        arm = record.arms[row.arm] if row.arm is not None else None
        rows.append(
            {
                "study_id": record.study_id,
                "arm": row.arm,
                "instruction": row.instruction,
                "origin": arm.origin if arm else "human",
                "candidate_mean": round(arm.mean, 6) if arm else None,
                "candidate_lower": round(arm.lower, 6) if arm else None,
                "candidate_upper": round(arm.upper, 6) if arm else None,
                "pool": row.pool,
                "role": row.role,
                "example": row.example,
                "input": row.input if record.with_task else None,
                "expected": list(row.expected) if record.with_task else None,
                "answer": row.answer,
                "reward": row.reward,
                "cached": row.cached,
                "note": row.note,
            }
        )
    return rows


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    record = open_record(args.study, Path(args.state_dir), say=_warn)
    if args.candidates:
        rows, columns = candidate_rows(record), CANDIDATE_COLUMNS
    else:
        rows, columns = answer_rows(record), ANSWER_COLUMNS
    form = args.format or ("csv" if args.csv else "jsonl")
    text = render_rows(rows, columns, form)
    if not args.out:
        sys.stdout.write(text)
        return 0
    target = Path(args.out)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"--out {str(target)!r}: cannot write it ({error.strerror})") from None
    print(f"{len(rows)} rows written to {target}", file=sys.stderr)
    return 0
