"""The held-out result of an ended study on the screens: a region of the live screen, and the
lines `ape-engine top` prints when the study it follows has ended (plain mode and live)."""

from __future__ import annotations

import io

import anyio
import pytest
from rich.console import Console

from engine.study.snapshot import HeldOutResult, HeldOutScore
from engine.ui.heldout import held_out_lines
from engine.ui.top import top
from tests.ui.fake_service import FakeService, serving
from tests.ui.snapshots import line_of, make_snapshot, render_screen
from tests.ui.test_live import ScriptedReader

WINNER = "Write the larger of the two numbers."
HUMAN = "Output the larger number."
HELD_OUT = HeldOutResult(
    winner=HeldOutScore(WINNER, 0.95, (0.764, 0.991), 20, 0, 1),
    runner_up=HeldOutScore("Write the larger of both numbers.", 0.9, (0.7, 0.97), 19, 1, 3),
    human=HeldOutScore(HUMAN, 0.85, (0.64, 0.948), 20),
)


def finished(**changes: object) -> object:
    return make_snapshot(status="finished", done=True, held_out=HELD_OUT, **changes)


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40)])
def test_the_screen_shows_the_held_out_result_once_the_study_ended(width: int, height: int) -> None:
    text = render_screen(finished(), width, height)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == height and all(len(line) <= width for line in lines)
    assert "held-out test pool · score [95 % interval]" in text
    winner = line_of(text, "│ winner #1 ")
    assert "0.950 [0.764, 0.991] n=20" in winner and "Write the larger" in winner
    assert "0.900 [0.700, 0.970] n=19, 1 failed" in line_of(text, "runner-up #3")
    human = line_of(text, "│ human ")
    assert "0.850 [0.640, 0.948] n=20" in human and HUMAN in human
    # under the status line, above the board
    assert text.index("held-out test pool") < text.index("leaderboard ·")


def test_no_held_out_region_while_the_study_runs_or_when_nothing_was_evaluated() -> None:
    assert "held-out" not in render_screen(make_snapshot(), 80, 24)
    cancelled = make_snapshot(status="cancelled", done=True)
    assert "held-out" not in render_screen(cancelled, 80, 24)
    assert held_out_lines(cancelled) == []


def test_the_held_out_lines() -> None:
    assert held_out_lines(finished()) == [
        "held-out test pool of study a1b2c3d4e5f6 (score [95 % interval]):",
        "  winner #1: 0.950 [0.764, 0.991] n=20",
        f"    {WINNER!r}",
        "  runner-up #3: 0.900 [0.700, 0.970] n=19, 1 failed",
        "    'Write the larger of both numbers.'",
        "  human: 0.850 [0.640, 0.948] n=20",
        f"    {HUMAN!r}",
    ]
    unscored = HeldOutResult(winner=HeldOutScore(WINNER, 0.0, (0.0, 0.0), 0, 20, 2))
    lines = held_out_lines(make_snapshot(done=True, held_out=unscored))
    assert lines[1] == "  winner #2: not scored (20 calls failed)"


@pytest.mark.anyio
async def test_plain_top_prints_the_held_out_result_when_the_study_ends() -> None:
    service = FakeService()
    study = service.add("s1")
    out = io.StringIO()

    async def finish_later() -> None:
        await anyio.sleep(0.3)
        study.current = finished(study_id="s1")

    async with serving(service) as url, anyio.create_task_group() as group:
        group.start_soon(finish_later)
        with anyio.fail_after(10):
            await top(url, console=Console(file=out, width=300), every_s=0.1, token_env=None)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("s1 running ")
    end = lines.index("held-out test pool of study s1 (score [95 % interval]):")
    assert lines[end - 1].startswith("s1 finished ")
    assert lines[end + 1 :] == held_out_lines(finished(study_id="s1"))[1:]


@pytest.mark.anyio
async def test_live_top_shows_the_held_out_result_and_prints_it_on_leaving() -> None:
    service = FakeService()
    service.add("s1", status="finished", done=True, held_out=HELD_OUT)
    reader = ScriptedReader({6: ["q"]})
    out = io.StringIO()
    console = Console(record=True, width=120, height=40, file=out, force_terminal=True)
    async with serving(service) as url:
        with anyio.fail_after(10):
            await top(url, console=console, reader=reader, token_env=None)  # type: ignore[arg-type]
    text = console.export_text()
    assert "held-out test pool · score [95 % interval]" in text  # the screen's region
    assert "held-out test pool of study s1 (score [95 % interval]):" in text  # printed after
    assert "  winner #1: 0.950 [0.764, 0.991] n=20" in text
