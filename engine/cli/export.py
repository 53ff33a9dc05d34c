"""`ape-engine export JOURNAL|ID --csv|--jsonl`: a study's answers as rows, for a spreadsheet
or a dataframe: one row per (candidate, example) scored on the scoring pool and per
(instruction, example) of the evaluation on the test pool, each with its candidate's text,
mean and interval; `--candidates` writes one row per candidate instead. Inputs and expected
outputs are filled in when the study's task loads as it was."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import orjson

from engine.app.records import open_record
from engine.cli.studies import add_state_dir
from engine.errors import ConfigError
from engine.study.record import StudyRecord

__all__ = ["ANSWER_COLUMNS", "CANDIDATE_COLUMNS", "ERROR_EXIT", "add_arguments", "main"]

ERROR_EXIT = 2

CANDIDATE_COLUMNS: tuple[str, ...] = (
    "study_id",
    "arm",
    "instruction",
    "origin",
    "parent",
    "parents",
    "state",
    "pulls",
    "mean",
    "lower",
    "upper",
    "test_role",
    "test_score",
    "test_lower",
    "test_upper",
    "test_n",
    "demos",
)
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
    parser.add_argument(
        "--candidates", action="store_true", help="one row per candidate, not per answer"
    )
    parser.add_argument("-o", "--out", metavar="FILE", help="write here (standard output)")
    add_state_dir(parser)


def _demos(
    places: tuple[int, ...] | None, texts: tuple[tuple[str, str], ...] | None
) -> list[Any] | None:
    """A candidate's own demo set (the demo search): each demo's input and output when the
    task loaded, else its place in the demo pool; None for the study's demos."""
    if places is None:
        return None
    if texts is None:
        return list(places)
    return [{"input": shown, "output": output} for shown, output in texts]


def candidate_rows(record: StudyRecord) -> list[dict[str, Any]]:
    rows = []
    for arm in record.arms:
        held = next((row for row in record.held_out if row.arm == arm.arm), None)
        rows.append(
            {
                "study_id": record.study_id,
                "arm": arm.arm,
                "instruction": arm.instruction,
                "origin": arm.origin,
                "parent": arm.parent,
                "parents": list(arm.parents),
                "state": arm.state,
                "pulls": arm.pulls,
                "mean": round(arm.mean, 6),
                "lower": round(arm.lower, 6),
                "upper": round(arm.upper, 6),
                "test_role": held.role if held else None,
                "test_score": round(held.score, 6) if held else None,
                "test_lower": round(held.interval[0], 6) if held else None,
                "test_upper": round(held.interval[1], 6) if held else None,
                "test_n": held.n if held else None,
                "demos": _demos(arm.demos, arm.demo_texts),
            }
        )
    return rows


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


def _cell(value: Any) -> str:
    """An item of a list in a CSV cell: a demo (a dict) as JSON, anything else as text."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """A header, then the rows; a list (the expected outputs, the parents) joined by `` | ``,
    None empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: " | ".join(map(_cell, v)) if isinstance(v, list) else ("" if v is None else v)
                for k, v in row.items()
            }
        )
    return out.getvalue()


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(orjson.dumps(row).decode() + "\n" for row in rows)


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    record = open_record(args.study, Path(args.state_dir), say=_warn)
    if args.candidates:
        rows, columns = candidate_rows(record), CANDIDATE_COLUMNS
    else:
        rows, columns = answer_rows(record), ANSWER_COLUMNS
    text = to_csv(rows, columns) if args.csv else to_jsonl(rows)
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
