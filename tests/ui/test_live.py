"""The in-process UI on a running study (fakes for the LLM parts): keys change the study, quit
cancels it cleanly, the screen is drawn, and without a terminal plain lines are printed."""

from __future__ import annotations

import dataclasses
import io

import anyio
import pytest
from rich.console import Console

from engine.study.result import StudyResult
from engine.study.snapshot import StudySnapshot
from engine.study.study import Study
from engine.ui.live import Display, PlainLines, TerminalUi, follow, make_ui
from tests.study.fakes import FakeScorer
from tests.study.test_study import make_study
from tests.ui.test_snapshot_json import through_json


class ScriptedReader:
    """Stands in for `KeyReader`: hands out keys at chosen `pressed()` calls (one per update)."""

    def __init__(self, script: dict[int, str | list[str]]) -> None:
        self.script = script
        self.polls = 0
        self.started = self.closed = False

    def start(self) -> ScriptedReader:
        self.started = True
        return self

    def pressed(self) -> list[str]:
        self.polls += 1
        keys = self.script.get(self.polls, [])
        return list(keys)

    def close(self) -> None:
        self.closed = True


async def run_shown(study: Study, display: Display) -> StudyResult:
    """Run the study with `display` following it, as `ape-engine run` does."""
    async with anyio.create_task_group() as group:
        group.start_soon(follow, display, study)
        result = await study.run()
    return result


def terminal_console(width: int = 100, height: int = 32) -> Console:
    return Console(record=True, width=width, height=height, file=io.StringIO(), force_terminal=True)


@pytest.mark.anyio
async def test_keys_change_the_running_study_and_quit_cancels_it() -> None:
    study, policy, _, _ = make_study(
        qualities=list(range(20, 80, 5)),
        n=400,
        scorer=FakeScorer(delay_s=0.01),
        concurrency=4,
        budget_scoring_calls=4000,
    )
    seen: dict[str, object] = {}

    class Watch(TerminalUi):
        def update(self, snapshot: StudySnapshot) -> None:
            super().update(snapshot)
            polls = reader.polls
            if polls == 3:
                seen["concurrency"] = study.snapshot().throughput.concurrency
                seen["budget"] = study.state.budgets.limit("scoring_calls")
            if polls == 4:
                seen["status"] = study.status
            if polls == 6:
                seen["resumed"] = study.status

    reader = ScriptedReader({2: ["C", "b", "N"], 3: ["p"], 5: ["p"], 6: ["j", "d"], 8: ["q"]})
    console = terminal_console(160, 32)  # wide enough for the whole status line
    ui = Watch(console, reader=reader)  # type: ignore[arg-type]
    with ui:
        result = await run_shown(study, ui)
    assert reader.started and reader.closed
    assert seen["concurrency"] == 5  # 4 + max(1, 25 %)
    assert seen["budget"] == 3200.0  # 80 % of 4000
    assert seen["status"] == "paused" and seen["resumed"] == "running"
    assert study.snapshot().proposals.new_candidate_share == pytest.approx(0.30)
    assert len(policy.dropped) == 1  # the second row of the board at that moment
    assert result.status == "cancelled" and result.reason == "cancelled by the user"
    screen = console.export_text()
    assert "★ leader" in screen and "C/c conc" in screen and "in-process" in screen
    assert "│ new-candidate share 25% -> 30%" in screen  # the last key of a batch is shown
    assert "● paused" in screen and "│ paused: no new calls (p resumes)" in screen
    assert "● cancelled" in screen  # the last frame, drawn before the screen is left


@pytest.mark.anyio
async def test_the_snapshot_of_a_real_study_survives_json() -> None:
    study, *_ = make_study(variant_rounds=1, scorer=FakeScorer(delay_s=0.001))
    snapshots: list[StudySnapshot] = []

    class Keep:
        def attach(self, control: object) -> None:
            return None

        def update(self, snapshot: StudySnapshot) -> None:
            snapshots.append(snapshot)

    await run_shown(study, Keep())  # type: ignore[arg-type]
    assert snapshots and snapshots[-1].done
    for snapshot in (snapshots[0], snapshots[len(snapshots) // 2], snapshots[-1]):
        assert through_json(snapshot) == snapshot


@pytest.mark.anyio
async def test_without_a_terminal_plain_lines_every_few_seconds() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    assert not console.is_terminal
    ui = make_ui(console)
    assert isinstance(ui, PlainLines)
    clock = [0.0]
    ui = PlainLines(console, every_s=3.0, time_s=lambda: clock[0])
    study, *_ = make_study(scorer=FakeScorer(delay_s=0.001))
    snapshot = study.snapshot()
    for t in (0.0, 1.0, 2.9, 3.1, 5.0, 6.5):
        clock[0] = t
        ui.update(snapshot)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # at 0, 3.1 and 6.5 s
    with anyio.fail_after(30):
        await run_shown(study, ui)
    final = out.getvalue().splitlines()[-1]
    assert final.startswith("finished ") and "scoring calls" in final and "leader #" in final


def test_make_ui_on_a_terminal_is_the_live_screen() -> None:
    assert isinstance(make_ui(terminal_console()), TerminalUi)


def test_plain_lines_print_each_warning_once_as_it_comes() -> None:
    out = io.StringIO()
    ui = PlainLines(Console(file=out, width=300), every_s=100.0, time_s=lambda: 0.0)
    study, *_ = make_study()
    snapshot = study.snapshot()
    warned = dataclasses.replace(snapshot, warnings=("nothing is being learned: ...",))
    for shown in (snapshot, warned, warned):
        ui.update(shown)
    warnings = [line for line in out.getvalue().splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: nothing is being learned: ..."]
