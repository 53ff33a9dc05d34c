"""A new user's first hour: the README's "A first study on your own task", step by step, on a
task file of the test's own, each command in its own process with its output through a pipe
(not a terminal) -- and every line each command prints checked against what happened: the
pools, the counts, the states, the spend, the winner (issue 26).

The endpoint is the simulator in a process of its own, serving the task file and wanting a
key, given as the README says: ``--base-url``, ``--model``, ``--api-key-env``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.app.records import read_record
from engine.sim import SimConfig, start_sim_process
from engine.study.record import StudyRecord

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-first-hour-0123456789"
BUDGET = 300


def winner_reason(result: dict[str, Any]) -> str:
    """Why the study ended, as the report says it: its scoring budget spent, or the policy's
    stopping rule (which holds only when the pick is proven)."""
    spent = result["spend"]["scoring_calls"]
    if result["certificate"]["proven"] and spent < BUDGET:
        return "the policy's stopping rule holds: the winner is identified"
    return f"budget scoring_calls reached ({spent} of {BUDGET})"


def proof_words(result: dict[str, Any]) -> tuple[str, str]:
    """What the report says the pick is worth, from the certificate in the JSON: the pick's
    role, and the line that says whether it is proven."""
    proof = result["certificate"]
    assert proof["arm"] == result["winner"]["arm"]
    if proof["proven"]:
        assert proof["supported"] <= proof["epsilon"] and proof["more_calls"] == 0
        return "winner", (
            f"proven: #{proof['arm']} is within {proof['epsilon']:.3f} of the best candidate on "
            "the scoring pool (95% confidence)"
        )
    assert proof["supported"] > proof["epsilon"]
    more = (
        f"; about {proof['more_calls']:,} more scoring calls would likely prove it"
        if proof["more_calls"]
        else ""
    )
    return "best so far", (
        f"not proven: #{proof['arm']} is the best so far, but the data put it within "
        f"{proof['supported']:.3f} of the best (95% confidence), not within "
        f"{proof['epsilon']:.3f}{more}"
    )


# -- the user's task file ------------------------------------------------------------------------


def write_task(folder: Path) -> Path:
    """120 made-up words and the same in capitals: the user's own task, unknown to the engine."""
    words = ["".join(letters) for letters in itertools.product("bdfg", "aeiou", "mnprst")]
    path = folder / "upper.jsonl"
    path.write_text("".join(json.dumps({"input": w, "output": w.upper()}) + "\n" for w in words))
    return path


def piped(cwd: Path, *argv: str) -> list[str]:
    """`ape-engine ARGV | cat`: the lines it printed; it must succeed and say nothing on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "COLUMNS"))}
    done = subprocess.run(
        [sys.executable, "-m", "engine", *argv],
        cwd=cwd, env={**env, "PYTHONPATH": str(ROOT), "MY_KEY": KEY}, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stdout + done.stderr
    return done.stdout.splitlines()


class Lines:
    """The lines a command printed, taken in order: each must be accounted for."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.at = 0

    def take(self) -> str:
        assert self.at < len(self.lines), "the command printed fewer lines than expected"
        line = self.lines[self.at]
        self.at += 1
        return line

    def exactly(self, expected: str) -> None:
        assert self.take() == expected

    def match(self, pattern: str) -> re.Match[str]:
        line = self.take()
        found = re.fullmatch(pattern, line)
        assert found is not None, (pattern, line)
        return found

    def table(self, title: str | None) -> list[list[str]]:
        """A rich table (its title, borders, header), as its rows of stripped cells."""
        if title is not None:
            self.exactly(title)
        assert self.take()[0] in "┏┌"
        rows = []
        while not (line := self.take()).startswith("└"):
            if line[0] in "┃│":
                rows.append([cell.strip() for cell in re.split(r"[┃│]", line)[1:-1]])
            else:
                assert line[0] in "┡├", line
        return rows

    def done(self) -> None:
        assert self.at == len(self.lines), f"lines not accounted for: {self.lines[self.at :]}"


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- the steps -----------------------------------------------------------------------------------


def check_tasks(lines: Lines, task: Path) -> None:
    """`ape-engine tasks upper.jsonl`: what the engine reads and the pools it would use."""
    lines.exactly(f"upper  ({task.name})")
    lines.exactly("examples: 120")
    lines.exactly("pools (defaults, seed 0): demo 22, scoring 68, test 30")
    lines.exactly("metric: exact_match")
    lines.exactly("human instruction: (none)")
    rows = lines.table(None)
    assert rows[0] == ["key", "input", "accepted outputs"]
    assert rows[1:] == [["line 1", "bam", "BAM"], ["line 2", "ban", "BAN"], ["line 3", "bap", "BAP"],
                        ["line 4", "bar", "BAR"], ["line 5", "bas", "BAS"]]  # fmt: skip
    lines.done()


def check_estimate(lines: Lines) -> int:
    """The pools, the worst case and the expected spend; the candidates planned."""
    lines.exactly(
        "task 'upper': 22 demos, 68 scoring examples, 30 test examples, metric exact_match; "
        "policy paired"
    )
    worst = lines.match(
        r"worst case \(full evaluation of (\d+) candidates x 68 examples\): ([\d,]+) calls "
        r"\(([\d,]+) scoring, (\d+) proposal, (\d+) test\), ~[\d,]+ tokens, ~\$0\.0000"
    )  # the simulator's model costs nothing
    planned, total, scoring, proposal, test = (int(g.replace(",", "")) for g in worst.groups())
    assert scoring == planned * 68 and test == 2 * 30  # winner and runner-up: no human one
    assert total == scoring + proposal + test
    expected = lines.match(
        rf"expected: ~([\d,]+) calls \({BUDGET} scoring\), ~[\d,]+ tokens, ~\$0\.0000"
    )
    assert int(expected.group(1).replace(",", "")) == BUDGET + proposal + test
    lines.match(rf"memory: at most ~\d+ MB \({planned} candidates x 68 scoring examples\)")
    return planned


def where(url: str) -> str:
    at = f"'sim-1' at {url} with the key in $MY_KEY"
    return f"endpoint; target {at}; proposals {at}"


def check_progress(lines: Lines, result: dict[str, Any]) -> None:
    """The plain progress lines: at least one while running, then the last, at the end."""
    candidates = result["candidates"]
    progress = r"(running|finished) \d+(?:m\d*)?s \| (\d+)/(\d+) scoring calls \| (\d+) candidates"
    progress += r" \((\d+) in play\) \| (.*)"
    seen = []
    while lines.lines[lines.at].startswith(("running ", "finished ")):
        seen.append(lines.match(progress))
    assert len(seen) >= 2 and seen[-1].group(1) == "finished"
    assert all(found.group(1) == "running" for found in seen[:-1])
    last = seen[-1]
    assert int(last.group(2)) == result["spend"]["scoring_calls"] and int(last.group(3)) == BUDGET
    assert int(last.group(4)) == len(candidates)
    assert int(last.group(5)) == sum(c["state"] in ("leader", "open") for c in candidates)
    winner = next(c for c in candidates if c["arm"] == result["winner"]["arm"])
    bounds = f"{winner['mean']:.3f} [{winner['lower']:.2f}, {winner['upper']:.2f}]"
    assert re.match(rf"leader #{winner['arm']}( \(.*?\))? {re.escape(bounds)} ", last.group(6))
    assert f"{winner['pulls']}/68 " in last.group(6) and " 0 errors" in last.group(6)


def check_report(lines: Lines, result: dict[str, Any], url: str) -> None:
    """The report: why it ended, the held-out scores, the leaderboard, the spend."""
    lines.exactly(
        f"Study {result['study_id']} on task 'upper' with policy paired: finished "
        f"({winner_reason(result)})"
    )
    assert result["reason"] == winner_reason(result)
    pick, proof = proof_words(result)
    lines.exactly(proof)
    held = lines.table("Held-out test pool (95 % interval)")
    assert held[0] == ["role", "instruction", "test score", "interval"]
    for row, role in zip(held[1:], ("winner", "runner_up"), strict=True):
        scored = result[role]
        low, high = scored["test_ci"]
        shown = pick if role == "winner" else "runner-up"
        assert row == [shown, clip(scored["instruction"], 70),
                       f"{scored['test_score']:.3f}", f"[{low:.3f}, {high:.3f}] n=30"]  # fmt: skip
    board = lines.table("Candidates (scoring pool n=68)")
    assert board[0] == ["#", "instruction", "origin", "mean", "bounds", "pulls", "state"]
    by_arm = {c["arm"]: c for c in result["candidates"]}
    assert board[1][0] == str(result["winner"]["arm"]) and board[1][-1] == "leader"
    for row in board[1:11]:
        one = by_arm[int(row[0])]
        mean = f"{one['mean']:.3f}" if one["pulls"] else "-"
        bounds = f"[{one['lower']:.2f}, {one['upper']:.2f}]"
        assert row[1] == clip(one["instruction"], 60)
        assert row[3:] == [mean, bounds, str(one["pulls"]), one["state"]]
        assert one["state"] != "active"  # the search has ended
    assert board[11] == ["", f"... and {len(by_arm) - 10} more", "", "", "", "", ""]
    assert sum(c["pulls"] for c in by_arm.values()) == result["spend"]["scoring_calls"]
    spend = dict(lines.table("Spend (across resumes)"))
    paid, full = result["spend"], result["full_evaluation_calls"]
    assert full == len(by_arm) * 68
    assert spend == {
        "scoring calls": f"{paid['scoring_calls']:,} = {paid['scoring_calls'] / full:.1%} of "
        f"full evaluation ({full:,})",
        "proposal calls": f"{paid['proposal_calls']:,} "
        f"({paid['proposal_tokens'] / paid['tokens']:.1%} of the tokens)",
        "test-pool calls": "60",
        "answered by the cache": "0",
        "failed for good": "0",
        "tokens": f"{paid['tokens']:,}",
        "dollars": "$0.0000",
        "seconds": f"{paid['seconds']:,.1f}",
    }
    lines.exactly(f"ran on: {where(url)}")
    lines.exactly("result written to out.json")
    proof = result["certificate"]
    if not proof["proven"] and proof["more_calls"]:
        more = result["spend"]["scoring_calls"] + proof["more_calls"]
        journal = f".ape/journals/upper-{result['study_id']}.jsonl"
        lines.exactly(
            f"to prove the pick: ape-engine resume {journal} --budget-scoring-calls {more}"
        )
    lines.done()


def check_listing(folder: Path, record: StudyRecord) -> None:
    """`ape-engine studies | grep upper`, `show ID | less`, `studies --format json | jq`."""
    (row,) = [line for line in piped(folder, "studies") if "upper" in line]
    winner = record.arms[record.winner or 0]
    held = record.held("winner")
    assert held is not None
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:4] == [record.study_id, "upper", "finished", "sim-1"]
    assert cells[4] == f"#{winner.arm} {clip(winner.instruction, 40)}"
    low, high = held.interval
    assert cells[5] == f"{held.score:.3f} [{low:.2f}, {high:.2f}]"
    assert cells[6] == f"$0.0000, {record.spend.scoring_calls:,} calls"
    shown = piped(folder, "show", record.study_id)
    assert shown[0] == f"Study {record.study_id} on task 'upper': finished ({record.reason})"
    (listed,) = json.loads("\n".join(piped(folder, "studies", "--format", "json")))
    assert listed["study_id"] == record.study_id and listed["winner"] == winner.arm
    assert listed["winner_instruction"] == winner.instruction


@pytest.mark.slow
def test_a_first_study_on_a_task_file_of_ones_own(tmp_path: Path) -> None:
    task = write_task(tmp_path)
    # 1. what the engine reads
    check_tasks(Lines(piped(tmp_path, "tasks", task.name)), task)
    with start_sim_process(SimConfig(tasks=(str(task),), api_keys=(KEY,))) as url:
        endpoint = ("--base-url", url, "--model", "sim-1", "--api-key-env", "MY_KEY")
        budget = ("--budget-scoring-calls", str(BUDGET))
        # 2. the cost, with no call
        lines = Lines(piped(tmp_path, "run", "--task", task.name, *endpoint, *budget, "--dry-run"))
        check_estimate(lines)
        lines.exactly(f"would run on: {where(url)}")
        lines.exactly("dry run: no call made")
        lines.done()
        assert not (tmp_path / ".ape").exists()  # no call, nothing written
        # 3. the study
        lines = Lines(piped(tmp_path, "run", "--task", task.name, *endpoint, *budget,
                            "--json", "out.json"))  # fmt: skip
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["status"] == "finished" and not result["warnings"] and not result["failures"]
    check_estimate(lines)
    lines.exactly(
        "response cache: .ape/cache.sqlite3 (a request made before is answered from it, free; "
        "--no-cache asks the model again)"
    )
    lines.match(rf"endpoint 'target' at {re.escape(url)}: model 'sim-1' answered in \d+\.\d\d s")
    journal = f".ape/journals/upper-{result['study_id']}.jsonl"
    lines.exactly(f"journal: {journal} (resume with: ape-engine resume {journal})")
    check_progress(lines, result)
    check_report(lines, result, url)
    record = read_record(tmp_path / journal)
    assert [arm.state for arm in record.arms] == [c["state"] for c in result["candidates"]]
    # 4. the studies, read back
    check_listing(tmp_path, record)
