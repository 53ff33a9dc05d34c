"""`kill -9` during the final evaluation, then `resume`: every evaluation answer the journal
holds is not paid for again, with the response cache or without it. The simulator, in its own
process, counts the calls paid (/v1/sim/stats): those paid twice never exceed the calls in
flight at the kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from engine.sim import SimConfig, start_sim_process

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 6


def records(journal: Path) -> list[dict[str, Any]]:
    found = []
    for line in journal.read_bytes().splitlines():
        try:
            found.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue  # the torn last line of a killed writer
    return found


def paid_in(journal: Path) -> int:
    paid = 0
    for record in records(journal):
        if record["kind"] in ("pull_done", "evaluation_done") and not record["cached"]:
            paid += 1
        elif record["kind"] == "proposals_done":
            paid += record["calls"] - record["cached_calls"]
    return paid


def evaluations(journal: Path) -> list[tuple[str, int]]:
    return [
        (r["instruction"], r["example"]) for r in records(journal) if r["kind"] == "evaluation_done"
    ]


def sim_calls(url: str) -> int:
    async def get() -> Any:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(f"{url}/sim/stats") as answer:
            return await answer.json()

    return int(anyio.run(get)["by_route"].get("/v1/chat/completions", 0))


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache"])
def test_kill_9_in_the_final_evaluation_pays_for_no_answer_twice(
    tmp_path: Path, cache: bool
) -> None:
    sim = SimConfig(tasks=("larger_number",), seed=7, latency_base_s=0.03, debug_routes=True)
    journal = tmp_path / "journal.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with start_sim_process(sim) as url:
        args = [
            "--task", "larger_number", "--base-url", url, "--journal", str(journal),
            "--scoring-size", "60", "--test-size", "100", "--budget-scoring-calls", "120",
            "--variant-rounds", "0", "--concurrency", str(CONCURRENCY), "--seed", "7",
        ]  # fmt: skip
        args += ["--cache", str(tmp_path / "cache.sqlite3")] if cache else ["--no-cache"]
        study = subprocess.Popen(
            [sys.executable, "-m", "engine", "run", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and study.poll() is None:
            if journal.exists() and len(evaluations(journal)) >= 40:
                break
            time.sleep(0.02)
        assert study.poll() is None, "the study ended before it could be killed"
        os.kill(study.pid, signal.SIGKILL)
        study.wait()
        time.sleep(0.2)  # the simulator answers the calls that were in flight
        done_before = evaluations(journal)
        assert len(done_before) >= 40
        assert not any(r["kind"] == "finished" for r in records(journal))
        resumed = subprocess.run(
            [sys.executable, "-m", "engine", "resume", str(journal), "--json", "out.json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        paid = sim_calls(url)
    result = orjson.loads((tmp_path / "out.json").read_bytes())
    assert result["status"] == "finished"
    done = evaluations(journal)
    assert len(done) == len(set(done)), "an evaluation answer was asked for twice"
    assert set(done_before) <= set(done)
    # each of the two runs asks its endpoint one tiny call before its first (the preflight,
    # not journaled): those are not answers paid twice
    twice = paid - paid_in(journal) - 2
    print(f"\n{'cache' if cache else 'no cache'}: {paid} calls paid, {twice} twice")
    assert 0 <= twice <= CONCURRENCY, (paid, paid_in(journal))
    winner = result["winner"]
    assert winner["n"] == 100 and winner["failed"] == 0  # scored on the whole test pool
