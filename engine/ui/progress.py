"""A progress display for `ape-engine run`: a rich progress bar on a terminal, the plain lines
of `engine.ui.live.PlainLines` otherwise. It is a `engine.ui.live.Display` (attach, then update
with each snapshot), as the terminal UI is; its text is `engine.ui.render.plain_line`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from engine.study.snapshot import StudyControl, StudySnapshot
from engine.ui.errors import NewErrors
from engine.ui.live import PlainLines
from engine.ui.render import plain_line

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """Progress while the study runs; `close()` when it ends."""

    def __init__(self, console: Console, *, plain_every_s: float = 2.0) -> None:
        self.console = console
        self._plain = (
            PlainLines(console, every_s=plain_every_s) if not console.is_terminal else None
        )
        self._progress: Progress | None = None
        self._task: Any = None
        self._errors = NewErrors()
        self._warned = 0

    def attach(self, control: StudyControl) -> None:
        if self._plain is not None:
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
        if self._plain is not None:
            self._plain.update(snapshot)
            return
        if self._progress is None:
            return
        for line in self._errors.lines(snapshot):
            self._progress.console.print(line, style="red", highlight=False, markup=False)
        for warning in snapshot.warnings[self._warned :]:  # above the bar, each once
            self._progress.console.print(f"warning: {warning}", highlight=False, markup=False)
        self._warned = max(self._warned, len(snapshot.warnings))
        budgets = {row.name: row for row in snapshot.budgets}
        spent = budgets["scoring_calls"].spent
        full = max(1, len(snapshot.arms) * snapshot.n)
        limit = budgets["scoring_calls"].limit
        total = min(full, limit) if limit is not None else full
        self._progress.update(
            self._task,
            completed=min(spent, total),
            total=total,
            line=plain_line(snapshot).split(" | ", 2)[-1],  # the bar shows status and time
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
