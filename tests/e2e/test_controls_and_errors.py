"""A study says what goes wrong while it runs, and stops searching when asked: the first failure
of each kind on the plain lines at once, in the snapshot, and as the result's error; a quota
error stops it at once; `stop_search()` evaluates the current leader on the test pool; the
simulator answers a study of another seed."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from engine.app import StudyConfig, execute, prepare
from engine.sim import SimConfig, serve_sim
from engine.study.events import Event, PullDone, StudyFinished
from engine.study.study import Study
from engine.ui.live import PlainLines, follow

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def config(base_url: str, tmp_path: Path, **changes: object) -> StudyConfig:
    settings: dict[str, object] = {
        "task": "sum",
        "base_url": base_url,
        "initial_candidates": 6,
        "variant_rounds": 0,
        "no_cache": True,
        "concurrency": 8,
        "journal": str(tmp_path / "journal.jsonl"),
    }
    return StudyConfig.of(**{**settings, **changes})  # type: ignore[arg-type]


async def test_a_quota_error_is_on_screen_at_once_and_stops_the_study(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    lines = PlainLines(console, every_s=3600)  # progress lines only at the end: errors at once
    async with serve_sim(SimConfig(tasks=("sum",), quota_requests=40)) as server:
        prepared = prepare(config(server.base_url, tmp_path))
        result = await execute(prepared, say=lambda _: None, watch=lambda s: follow(lines, s))
    text = out.getvalue()
    assert result.status == "failed" and result.error and "quota" in result.error
    assert "error (quota):" in text and "endpoint 'target'" in text
    assert result.failures.get("quota", 0) <= 8  # stopped at once, not after max_failures


async def test_stop_search_evaluates_the_leader_now(tmp_path: Path) -> None:
    reached = anyio.Event()
    pulls = 0

    def count(event: Event) -> None:
        nonlocal pulls
        pulls += isinstance(event, PullDone)
        if pulls >= 60 or isinstance(event, StudyFinished):
            reached.set()

    async def stop_soon(study: Study) -> None:
        await reached.wait()
        study.stop_search()

    async with serve_sim(SimConfig(tasks=("sum",), latency_base_s=0.02)) as server:
        prepared = prepare(config(server.base_url, tmp_path, variant_rounds=2))
        result = await execute(prepared, observers=[count], say=lambda _: None, watch=stop_soon)
    assert result.status == "finished" and "search stopped" in result.reason
    assert result.winner is not None and result.winner.n == len(prepared.splits.test)
    assert result.spend.scoring_calls < 200


async def test_a_simulator_of_one_seed_answers_a_study_of_another(tmp_path: Path) -> None:
    async with serve_sim(SimConfig(seed=1)) as server:  # every built-in task, seed 1
        prepared = prepare(config(server.base_url, tmp_path, seed=5, budget_scoring_calls=200))
        result = await execute(prepared, say=lambda _: None)
    assert result.status == "finished" and result.winner is not None
    assert result.winner.test_score > 0.3  # not "I do not know." to every input
    assert max(c.mean for c in result.candidates) > 0.3
