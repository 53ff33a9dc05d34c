"""Snapshots with known numbers for the UI tests, a recording console that renders them to
text at a fixed size, and a `StudyControl` that records the calls it gets."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

from rich.console import Console

from engine.errors import ConfigError
from engine.study.snapshot import (
    ArmRow,
    BudgetRow,
    LimiterRow,
    ProposalRow,
    StudySnapshot,
    ThroughputRow,
)
from engine.ui.render import screen

LONG_TEXT = (
    "Read both numbers carefully, compare them digit by digit from the left, and write "
    "down only the larger of the two numbers without any explanation"
)


def arms() -> tuple[ArmRow, ...]:
    return (
        ArmRow(
            0,
            "Write the larger of the two numbers.",
            0.62,
            0.50,
            0.74,
            60,
            2,
            200,
            "active",
            "initial",
        ),
        ArmRow(1, LONG_TEXT, 0.81, 0.70, 0.90, 90, 4, 200, "leader", "initial"),
        ArmRow(
            2, "Output the bigger number.", 0.30, 0.10, 0.45, 24, 0, 200, "eliminated", "initial"
        ),
        ArmRow(
            3,
            "Write the larger of both numbers.",
            0.79,
            0.66,
            0.88,
            70,
            3,
            200,
            "active",
            "resample",
            1,
            (1,),
        ),
        ArmRow(4, "Say the number.", 0.20, 0.20, 0.20, 200, 0, 200, "complete", "initial"),
        ArmRow(5, "Repeat the input.", 0.05, 0.0, 0.40, 8, 0, 200, "dropped", "user"),
    )


def make_snapshot(**changes: Any) -> StudySnapshot:
    snapshot = StudySnapshot(
        study_id="a1b2c3d4e5f6",
        task="larger_number",
        policy="lucb",
        status="running",
        elapsed_s=75.0,
        eta_s=40.0,
        n=200,
        arms=arms(),
        throughput=ThroughputRow(
            calls_per_s=152.5,
            recent_calls_per_s=(0.0, 10.0, 80.0, 160.0, 150.0, 155.0),
            latency_p50_s=0.039,
            latency_p95_s=1.25,
            in_flight=16,
            concurrency=16,
            retries=7,
            rate_limited=3,
            errors=2,
        ),
        limiters=(LimiterRow("target", 6000.0, 90000.0, 0.75, 0.25, True),),
        budgets=(
            BudgetRow("scoring_calls", 1234.0, 2000.0),
            BudgetRow("proposal_calls", 13.0, None),
            BudgetRow("tokens", 45210.0, None),
            BudgetRow("usd", 0.0125, 1.0),
            BudgetRow("seconds", 75.0, 600.0),
        ),
        proposals=ProposalRow(
            generated=53, kept=6, duplicates=14, rejected=1, waiting=2, new_candidate_share=0.25
        ),
        message="variant round 1: 6 candidates",
        winner=1,
    )
    return replace(snapshot, **changes)


def render(renderable: Any, width: int, height: int) -> str:
    console = Console(
        record=True, width=width, height=height, file=io.StringIO(), color_system=None
    )
    console.print(renderable)
    return console.export_text()


def render_screen(snapshot: StudySnapshot, width: int, height: int, **options: Any) -> str:
    return render(screen(snapshot, **options), width, height)


def line_of(text: str, needle: str) -> str:
    """The one line of `text` that holds `needle`."""
    lines = [line for line in text.splitlines() if needle in line]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


class FakeControl:
    """A `StudyControl` that records calls and shows a snapshot that follows them."""

    def __init__(self, snapshot: StudySnapshot | None = None) -> None:
        self.current = snapshot or make_snapshot()
        self.calls: list[tuple[str, Any]] = []
        self.refuse: set[str] = set()

    def snapshot(self) -> StudySnapshot:
        return self.current

    def _call(self, name: str, value: Any) -> None:
        if name in self.refuse:
            raise ConfigError(f"{name}: refused by the test")
        self.calls.append((name, value))

    def set_concurrency(self, concurrency: int) -> None:
        self._call("set_concurrency", concurrency)
        self.current = replace(
            self.current, throughput=replace(self.current.throughput, concurrency=concurrency)
        )

    def set_rate_limits(
        self,
        *,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        endpoint: str | None = None,
    ) -> None:
        limits = (requests_per_minute, tokens_per_minute)
        self._call("set_rate_limits", limits if endpoint is None else (*limits, endpoint))
        limiters = tuple(
            replace(
                row, requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute
            )
            if endpoint in (None, row.endpoint)
            else row
            for row in self.current.limiters
        )
        self.current = replace(self.current, limiters=limiters)

    def set_budget(self, name: str, limit: float | None) -> None:
        self._call("set_budget", (name, limit))
        budgets = tuple(
            replace(b, limit=limit) if b.name == name else b for b in self.current.budgets
        )
        self.current = replace(self.current, budgets=budgets)

    def set_new_candidate_share(self, share: float) -> None:
        self._call("set_new_candidate_share", share)
        self.current = replace(
            self.current, proposals=replace(self.current.proposals, new_candidate_share=share)
        )

    def pause(self) -> None:
        self._call("pause", None)
        self.current = replace(self.current, status="paused")

    def resume(self) -> None:
        self._call("resume", None)
        self.current = replace(self.current, status="running")

    def drop_arm(self, arm: int) -> None:
        self._call("drop_arm", arm)
        self.current = replace(
            self.current,
            arms=tuple(
                replace(a, state="dropped") if a.arm == arm else a for a in self.current.arms
            ),
        )

    def cancel(self, reason: str = "cancelled by the user") -> None:
        self._call("cancel", None)
        self.current = replace(self.current, status="cancelled", done=True)

    def stop_search(self, reason: str = "search stopped by the user") -> None:
        self._call("stop_search", None)
        self.current = replace(self.current, status="stopping")
