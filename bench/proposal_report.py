"""The bookkeeping and tables of bench/proposals.py, apart from the models: the ledger of
finished studies (one JSON line each, read back to skip them on a rerun) and the report built
from it (per task the test score of each strategy's pick and of the human instruction with 95 %
intervals, tasks at or above the human instruction, interquartile means, the GEPA peer, the
proposal calls' share of the spend)."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from real_model import combine, half_width, interquartile_mean

__all__ = [
    "IDENTITY",
    "ORDER",
    "UNNAMED_POLICY",
    "Ledger",
    "label",
    "report",
    "study_key",
    "summarise",
]

#: The fields that name a study: a rerun skips a study whose identity is in the ledger.
IDENTITY = (
    "suite",
    "task",
    "strategy",
    "scoring_demos",
    "seed",
    "budget",
    "options",
    "start",
    "system",
    "policy",
)
ORDER = ("resample", "reflect", "both", "gepa")
#: the policy of every row until 2026-12-08: a row of it names no policy, so it keeps its key
UNNAMED_POLICY = "lucb"
ENGINE = ("resample", "reflect", "both")


def study_key(record: dict[str, Any]) -> str:
    """A study's identity as one string (the budget's fields in a fixed order)."""
    return json.dumps({name: record.get(name) for name in IDENTITY}, sort_keys=True)


class Ledger:
    """The finished studies, one JSON line each, appended as each finishes. A torn last line
    (a run stopped while writing it) is ignored: that study runs again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        records = []
        lines = self.path.read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):
                    break  # torn by an interrupted write
                raise SystemExit(f"{self.path}:{number}: not a JSON line") from None
        return records

    def done(self) -> set[str]:
        return {study_key(record) for record in self.records()}

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = self.path.read_bytes() if self.path.is_file() else b""
        if text and not text.endswith(b"\n"):  # drop a torn last line: its study runs again
            with self.path.open("r+b") as torn:
                torn.truncate(text.rfind(b"\n") + 1)
        with self.path.open("a") as out:
            out.write(json.dumps(record) + "\n")
            out.flush()
            os.fsync(out.fileno())


def label(record: dict[str, Any]) -> str:
    """A column of the report: the strategy, and the settings it ran with beyond the defaults
    (``reflect parents=pareto``)."""
    options = record.get("options") or {}
    return " ".join([record["strategy"], *(f"{k}={v}" for k, v in sorted(options.items()))])


def _base(name: str) -> str:
    return name.split(" ")[0]


def _mean(runs: list[dict[str, Any]]) -> tuple[float, float, float]:
    """(mean, low, high): one seed's test score and its own 95 % interval (Wilson for 0/1
    rewards: not symmetric near 0 and 1); over several seeds, the mean and the interval of
    `real_model.combine` (sampling error and spread between seeds), kept within [0, 1]."""
    if len(runs) == 1:
        return runs[0]["score"], runs[0]["ci"][0], runs[0]["ci"][1]
    mean, half = combine([r["score"] for r in runs], [half_width(*r["ci"]) for r in runs])
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def summarise(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One setting's records (same suite, demos and budget) as per-task scores and totals."""
    by_task: dict[str, dict[str, list[dict[str, Any]]]] = {}
    humans: dict[str, dict[int, dict[str, Any]]] = {}
    spend: dict[str, list[dict[str, Any]]] = {}
    origins: dict[str, list[str | None]] = {}
    rescored: dict[str, dict[int, dict[str, Any]]] = {}  # the human one, scored beside GEPA
    for record in records:
        by_task.setdefault(record["task"], {}).setdefault(label(record), []).append(record["pick"])
        if record["strategy"] in ENGINE:  # the engine's own evaluation of the human one
            humans.setdefault(record["task"], {}).setdefault(record["seed"], record["human"])
        else:
            rescored.setdefault(record["task"], {})[record["seed"]] = record["human"]
        spend.setdefault(label(record), []).append(record["spend"])
        origins.setdefault(label(record), []).append(record["pick"].get("origin"))
    tasks = {}
    for task, picks in sorted(by_task.items()):
        row: dict[str, Any] = {name: _mean(runs) for name, runs in picks.items()}
        if task in humans or task in rescored:  # the engine's evaluation where there is one
            row["human"] = _mean(list({**rescored.get(task, {}), **humans.get(task, {})}.values()))
        tasks[task] = row
    same = [
        abs(human["score"] - humans[task][seed]["score"]) < 1e-9
        for task, seeds in rescored.items()
        for seed, human in seeds.items()
        if seed in humans.get(task, {})
    ]
    return {
        "tasks": tasks,
        "spend": spend,
        "origins": origins,
        "same_human": (sum(same), len(same)),
    }


def _count(tasks: dict[str, Any], mine: str, other: str) -> tuple[int, int]:
    """(tasks where `mine` scores at least `other`, tasks that have both)."""
    both = [row for row in tasks.values() if mine in row and other in row]
    return sum(row[mine][0] >= row[other][0] for row in both), len(both)


def _split(tasks: dict[str, Any], mine: str, other: str) -> str:
    """How the tasks with both divide: higher, equal, lower (most ties are both at 0)."""
    both = [(row[mine][0], row[other][0]) for row in tasks.values() if mine in row and other in row]
    higher = sum(a > b for a, b in both)
    lower = sum(a < b for a, b in both)
    return f"{higher} higher, {len(both) - higher - lower} equal, {lower} lower"


def _iqm(tasks: dict[str, Any], name: str, among: list[str] | None = None) -> float:
    rows = [row for task, row in tasks.items() if among is None or task in among]
    return interquartile_mean([row[name][0] for row in rows if name in row])


def _share(spends: list[dict[str, Any]]) -> float:
    """Proposal calls as a share of all calls of the search (proposal + scoring)."""
    proposal = sum(s["proposal_calls"] for s in spends)
    total = proposal + sum(s["scoring_calls"] for s in spends)
    return proposal / total if total else 0.0


def _cell(value: tuple[float, float, float] | None) -> str:
    return "-" if value is None else f"{value[0]:.2f} [{value[1]:.2f}, {value[2]:.2f}]"


def _table(summary: dict[str, Any], names: list[str]) -> list[str]:
    tasks = summary["tasks"]
    lines = ["| task | human | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for task, row in tasks.items():
        cells = [_cell(row.get(name)) for name in ("human", *names)]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    complete = [t for t, row in tasks.items() if all(n in row for n in ("human", *names))]
    iqm = [f"**{_iqm(tasks, name, complete):.3f}**" for name in ("human", *names)]
    lines.append(f"| **IQM ({len(complete)} tasks with every column)** | " + " | ".join(iqm) + " |")
    counts = ["{} / {}".format(*_count(tasks, name, "human")) for name in names]
    lines.append("| **pick >= human** | | " + " | ".join(counts) + " |")
    share = [f"{_share(summary['spend'][name]):.1%}" for name in names]
    lines.append("| proposal share of calls | | " + " | ".join(share) + " |")
    calls = [
        f"{statistics.fmean(s['scoring_calls'] for s in summary['spend'][name]):.0f}"
        for name in names
    ]
    lines.append("| target calls / search (mean) | | " + " | ".join(calls) + " |")
    lines.append("| picks from the variant round | | " + " | ".join(
        _variant_picks(summary["origins"][name]) for name in names) + " |")  # fmt: skip
    return lines


#: the origin of an initial proposal (engine versions before and after the variants setting)
INITIAL = ("proposal", "initial", "user")  # "user": the shared initial candidates


def _variant_picks(origins: list[str | None]) -> str:
    """How many picks are variants (of those whose origin the record has)."""
    known = [origin for origin in origins if origin is not None]
    if not known:
        return "-"
    return f"{sum(origin not in INITIAL for origin in known)} / {len(known)}"


def _comparisons(tasks: dict[str, Any], names: list[str]) -> list[str]:
    lines = []
    for name in names:
        if _base(name) in ("reflect", "both") and "resample" in names:
            at_least, count = _count(tasks, name, "resample")
            shared = [t for t, row in tasks.items() if name in row and "resample" in row]
            gain = _iqm(tasks, name, shared) - _iqm(tasks, "resample", shared)
            lines.append(f"- {name} >= resample on {at_least} of {count} tasks "
                         f"({_split(tasks, name, 'resample')}); IQM {gain:+.3f} "
                         "(goal: >= 16 of 24, +0.05)")  # fmt: skip
    for name in names:
        if _base(name) in ENGINE and "gepa" in names:
            at_least, count = _count(tasks, name, "gepa")
            shared = [t for t, row in tasks.items() if name in row and "gepa" in row]
            lines.append(f"- {name} >= GEPA on {at_least} of {count} tasks "
                         f"({_split(tasks, name, 'gepa')}; IQM over them "
                         f"{_iqm(tasks, name, shared):.3f} vs {_iqm(tasks, 'gepa', shared):.3f};"
                         " goal: >= 3/4)")  # fmt: skip
    return lines


def _scorer_check(summary: dict[str, Any]) -> list[str]:
    same, count = summary["same_human"]
    if not count:
        return []
    return [f"- the human instruction rescored by the bench beside GEPA's pick: the engine's own "
            f"test score on {same} of {count} tasks (the same scorer and examples)"]  # fmt: skip


def _setting(record: dict[str, Any], policy: str | None = None) -> str:
    """The table a record belongs in: suite, scoring demos, budget, start, system, policy."""
    return json.dumps(
        [record["suite"], record["scoring_demos"], record["budget"], record.get("start"),
         record.get("system"), policy]
    )  # fmt: skip


def _peer_of(setting: str, record: dict[str, Any]) -> bool:
    """Whether a GEPA row goes beside an engine table: the same suite, demos, budget and
    system message, whatever the engine's start and policy (GEPA has neither)."""
    suite, demos, budget, _, system, _ = json.loads(setting)
    return [suite, demos, budget, system] == [
        record["suite"], record["scoring_demos"], record["budget"], record.get("system")
    ]  # fmt: skip


def report(records: list[dict[str, Any]], *, models: list[str] | None = None) -> str:
    """Markdown: one table per setting (suite, scoring demos, budget), with its comparisons."""
    settings: dict[str, list[dict[str, Any]]] = {}
    peers: list[dict[str, Any]] = []
    for record in records:
        if record["strategy"] == "gepa":  # the engine's policy is not GEPA's: beside each
            peers.append(record)
            continue
        settings.setdefault(_setting(record, record.get("policy")), []).append(record)
    for record in peers:
        tables = [key for key in settings if _peer_of(key, record)]
        for key in tables or [_setting(record)]:
            settings.setdefault(key, []).append(record)
    if not settings:
        return "no finished study yet"
    out = []
    for setting, group in settings.items():
        suite, demos, budget, start, system, policy = json.loads(setting)
        summary = summarise(group)
        names = sorted(summary["spend"], key=lambda name: (ORDER.index(_base(name)), name))
        seeds = sorted({record["seed"] for record in group})
        shown = "zero-shot" if demos == 0 else f"scoring demos {demos or 'default (3)'}"
        out.append(
            f"### {suite}, {shown}, seeds {seeds}: {budget['initial_candidates']} initial "
            f"candidates, {budget['variant_rounds']} variant round(s), scoring pool "
            f"{budget['scoring_size']}, {budget['scoring_calls']} scoring calls, "
            f"{budget['test_size']} test examples"
            + (
                "; every strategy starts from the same initial candidates"
                if start == "shared"
                else "; each study proposes its own initial candidates"
            )
            + (f"; output-only system message {system!r}" if system is not None else "")
            + f"; policy `{policy or UNNAMED_POLICY}`"
        )
        out.append("")
        out += _table(summary, names)
        out.append("")
        out += _comparisons(summary["tasks"], names)
        out += _scorer_check(summary)
        engines: dict[str, int] = {}
        for record in group:
            engines[record.get("engine", "?")] = engines.get(record.get("engine", "?"), 0) + 1
        out.append("- engine commits: " + ", ".join(f"{e} ({n})" for e, n in engines.items()))
        out.append("")
    if models:
        out.append("Models: " + ", ".join(models))
    return "\n".join(out)
