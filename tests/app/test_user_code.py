"""A metric or a scorer of the user's that is wrong is the user's code failing, not the
endpoint: a metric of the wrong arity is refused before any call, and one that raises (or
returns something that is not a number in [0, 1]) stops the study at the first example with
that example named -- in Python and on the command line -- and is never counted as a failed
call or blamed on the endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.app import optimize
from engine.errors import ConfigError, ScorerError
from engine.study.journal import read_records

ROOT = Path(__file__).resolve().parents[2]
WORDS = ("stressed", "drawer", "live", "parts", "reward", "diaper", "straw", "keep", "smart",
         "spoons", "denim", "lager", "regal", "stop", "time", "evil")  # fmt: skip
EXAMPLES = [{"input": w, "output": w[::-1]} for w in WORDS]
SMALL: dict[str, Any] = {
    "backend": "sim",
    "initial_candidates": 4,
    "variant_rounds": 0,
    "budget_scoring_calls": 60,
    "no_cache": True,
    "concurrency": 4,
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_a_metric_of_the_wrong_arity_is_refused_before_any_call(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metric <lambda>: must take two arguments"):
        optimize(EXAMPLES, metric=lambda answer: 1.0, **SMALL)
    assert not (tmp_path / ".ape" / "journals").exists()  # nothing started


def broken(answer: str, example: Any) -> float:
    return 1.0 / len(answer.strip("x" * 99 + answer))  # ZeroDivisionError, on every answer


def test_a_metric_that_raises_stops_the_study_at_its_first_example(tmp_path: Path) -> None:
    journal = tmp_path / "study.jsonl"
    with pytest.raises(ScorerError) as raised:
        optimize(EXAMPLES, metric=broken, journal=str(journal), **SMALL)
    message = str(raised.value)
    assert "metric broken raised ZeroDivisionError" in message
    assert "(input '" in message and any(f"'{w}'" in message for w in WORDS)
    assert "Endpoint" not in message and "endpoint" not in message
    records = read_records(journal)
    assert not [r for r in records if r["kind"] in ("call_failed", "pull_done")]
    stopped = [r for r in records if r["kind"] == "status_changed" and r["status"] == "failed"]
    assert stopped and "metric broken raised" in stopped[-1]["reason"]


@pytest.mark.parametrize("value", [2.0, float("nan"), "yes", None])
def test_a_metric_that_returns_no_score_names_what_it_returned(value: Any) -> None:
    with pytest.raises(ScorerError, match=r"returned .* it must return a number in \[0, 1\]"):
        optimize(EXAMPLES, metric=lambda answer, example: value, **SMALL)


def test_a_custom_scorer_that_raises_fails_the_command_line_naming_the_example(
    tmp_path: Path,
) -> None:
    (tmp_path / "myscorer.py").write_text(
        "async def score(instruction, example, client):\n"
        "    raise KeyError('label')\n"
    )  # fmt: skip
    task = tmp_path / "reverse.jsonl"
    task.write_text("".join(f'{{"input": "{w}", "output": "{w[::-1]}"}}\n' for w in WORDS))
    done = subprocess.run(
        [sys.executable, "-m", "engine", "run", "--task", str(task), "--backend", "sim",
         "--scorer", "myscorer:score", "--initial-candidates", "4", "--variant-rounds", "0",
         "--no-cache", "--json", "out.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("ape-engine run: scorer 'myscorer:score' raised KeyError")
    assert "on line " in error and "(input '" in error  # the example, by its line of the file
    assert "failed for good" not in done.stdout + done.stderr
    assert "Check the endpoint" not in done.stdout + done.stderr
