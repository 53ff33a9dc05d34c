"""What the result commands print for scripts (`--format`): rows as JSON, JSON lines, CSV or
TSV, and a study as rows -- its line of `ape-engine studies`, its candidates -- or as one JSON
object (`ape-engine show --format json`).

The table the commands draw by default is for people; these are for ``jq``, ``cut`` and a
dataframe. Every text is whole (never clipped), a number is a number in JSON, and in TSV a
tab or a line break inside a text becomes a space so that one row stays one line.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from engine.study.record import StudyRecord

__all__ = [
    "CANDIDATE_COLUMNS",
    "STUDY_COLUMNS",
    "add_format_flag",
    "candidate_rows",
    "render_rows",
    "study_json",
    "study_row",
]

#: The columns of a candidate's row (`export --candidates`, `show --format tsv`).
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
#: The columns of `ape-engine studies --format json|tsv`, one row per study.
STUDY_COLUMNS: tuple[str, ...] = (
    "study_id",
    "task",
    "status",
    "reason",
    "model",
    "policy",
    "winner",
    "winner_instruction",
    "test_score",
    "test_lower",
    "test_upper",
    "test_n",
    "usd",
    "scoring_calls",
    "started",
    "journal",
)


def add_format_flag(parser: argparse._ActionsContainer, choices: Sequence[str], what: str) -> None:
    """``--format``: the table (the default, for people) or one of `choices`, for scripts."""
    parser.add_argument(
        "--format",
        choices=("table", *choices),
        default="table",
        help=f"table (for people; the default), or {what} for scripts",
    )


def _item(value: Any) -> str:
    """An item of a list in a cell: a demo (a dict) as JSON, anything else as text."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)


def _cell(value: Any) -> str:
    """One cell of CSV or TSV: a list joined by `` | ``, None empty."""
    if isinstance(value, list | tuple):
        return " | ".join(map(_item, value))
    return "" if value is None else str(value)


def render_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str], form: str) -> str:
    """`rows` as `form`: ``json`` (one array), ``jsonl`` (an object a line), ``csv`` or ``tsv``
    (a header, then a line a row)."""
    listed = list(rows)
    if form == "json":
        return orjson.dumps(listed, option=orjson.OPT_INDENT_2).decode() + "\n"
    if form == "jsonl":
        return "".join(orjson.dumps(row).decode() + "\n" for row in listed)
    if form == "tsv":
        lines = ["\t".join(columns)]
        for row in listed:
            lines.append("\t".join(" ".join(_cell(row.get(c)).split()) for c in columns))
        return "\n".join(lines) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in listed:
        writer.writerow({column: _cell(row.get(column)) for column in columns})
    return out.getvalue()


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def study_row(record: StudyRecord) -> dict[str, Any]:
    """A study as one row of `STUDY_COLUMNS`."""
    winner = record.arms[record.winner] if record.winner is not None else None
    held = record.held("winner")
    scored = held is not None and held.n > 0
    return {
        "study_id": record.study_id,
        "task": record.task.name,
        "status": record.status,
        "reason": record.reason,
        "model": record.model,
        "policy": record.policy,
        "winner": winner.arm if winner else None,
        "winner_instruction": winner.instruction if winner else None,
        "test_score": _rounded(held.score) if held and scored else None,
        "test_lower": _rounded(held.interval[0]) if held and scored else None,
        "test_upper": _rounded(held.interval[1]) if held and scored else None,
        "test_n": held.n if held else None,
        "usd": _rounded(record.spend.usd),
        "scoring_calls": record.spend.scoring_calls,
        "started": _iso(record.created),
        "journal": str(record.path),
    }


def _iso(seconds: float) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds)) if seconds else None


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
    """One row per candidate, in the order of the study (`ape-engine export --candidates`):
    its text, kind, parents, state, pulls, mean and bounds on the scoring pool, and its score
    on the test pool when it was evaluated there."""
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
                "test_score": _rounded(held.score) if held else None,
                "test_lower": _rounded(held.interval[0]) if held else None,
                "test_upper": _rounded(held.interval[1]) if held else None,
                "test_n": held.n if held else None,
                "demos": _demos(arm.demos, arm.demo_texts),
            }
        )
    return rows


def study_json(record: StudyRecord) -> dict[str, Any]:
    """A study whole, as `ape-engine show` shows it, for scripts: what it is, how it ended,
    the held-out scores, every candidate (best first), the spend, the warnings and failures.
    The answers themselves are `ape-engine export`'s."""
    by_arm = {row["arm"]: row for row in candidate_rows(record)}
    return {
        **study_row(record),
        "error": record.error,
        "metric": record.task.metric,
        "pools": {
            "demo": record.pools.demo,
            "scoring": record.pools.scoring,
            "test": record.pools.test,
        },
        "held_out": [
            {
                "role": row.role,
                "arm": row.arm,
                "instruction": row.instruction,
                "score": round(row.score, 6),
                "lower": round(row.interval[0], 6),
                "upper": round(row.interval[1], 6),
                "n": row.n,
            }
            for row in record.held_out
        ],
        "candidates": [by_arm[arm.arm] for arm in record.ranked()],
        "spend": record.spend.to_json(),
        "full_evaluation_calls": len(record.arms) * record.pools.scoring,
        "warnings": list(record.warnings),
        "failures": dict(record.failures),
        "proposals": record.proposals,
    }
