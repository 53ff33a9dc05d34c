"""A progress display for `ape-engine run`: a rich progress bar on a terminal, plain lines
otherwise. It is a `engine.ui.live.Display` (attach, then update with each snapshot), as the
terminal UI is."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from engine.study.snapshot import StudySnapshot

__all__ = ["ProgressDisplay"]


def _line(snapshot: StudySnapshot) -> str:
    budgets = {row.name: row for row in snapshot.budgets}
    calls = budgets["scoring_calls"]
    limit = f"/{calls.limit:.0f}" if calls.limit is not None else ""
    leader = next((row for row in snapshot.arms if row.arm == snapshot.winner), None)
    active = sum(1 for row in snapshot.arms if row.state in ("active", "leader"))
    lead = f" leader #{leader.arm} {leader.mean:.3f} ({leader.pulls} pulls)" if leader else ""
    return (
        f"{snapshot.status}: {calls.spent:.0f}{limit} scoring calls, "
        f"{len(snapshot.arms)} candidates ({active} in play),{lead}, "
        f"{snapshot.throughput.calls_per_s:.0f} calls/s, {snapshot.throughput.errors} errors"
    )


class ProgressDisplay:
    """Progress while the study runs; `close()` when it ends."""

    def __init__(self, console: Console, *, plain_every_s: float = 2.0) -> None:
        self.console = console
        self._plain = not console.is_terminal
        self._every_s = plain_every_s
        self._last = 0.0
        self._progress: Progress | None = None
        self._task: Any = None

    def attach(self, control: object) -> None:
        if self._plain:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[line]}"),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("scoring", total=1, line="")

    def update(self, snapshot: StudySnapshot) -> None:
        if self._plain:
            now = time.monotonic()
            if now - self._last >= self._every_s or snapshot.done:
                self._last = now
                self.console.print(_line(snapshot), highlight=False)
            return
        if self._progress is None:
            return
        budgets = {row.name: row for row in snapshot.budgets}
        spent = budgets["scoring_calls"].spent
        full = max(1, len(snapshot.arms) * snapshot.n)
        limit = budgets["scoring_calls"].limit
        total = min(full, limit) if limit is not None else full
        self._progress.update(
            self._task,
            completed=min(spent, total),
            total=total,
            line=_line(snapshot).split(": ", 1)[1],
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
