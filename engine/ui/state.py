"""What the terminal UI remembers between frames: the selected candidate, a notice, quitting.

The leaderboard order is a pure function of a snapshot (`ordered_arms`): the leader first, then
candidates still in play and the fully evaluated ones by mean (those not pulled yet after them),
then the eliminated, then the dropped. The selection follows an arm id, not a row, so it stays on its candidate when the
order changes under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.study.snapshot import ArmRow, StudySnapshot

__all__ = ["NOTICE_S", "UiState", "ordered_arms"]

NOTICE_S = 4.0  # how long a key's notice stays on the status line

_RANK = {"leader": 0, "active": 1, "complete": 1, "eliminated": 2, "dropped": 3}


def ordered_arms(snapshot: StudySnapshot) -> list[ArmRow]:
    return sorted(
        snapshot.arms,
        key=lambda row: (_RANK.get(row.state, 1), row.pulls == 0, -row.mean, row.arm),
    )


@dataclass(slots=True)
class UiState:
    selected: int | None = None  # arm id
    notice: str = ""
    notice_at: float = 0.0
    quit: bool = False
    time_s: Callable[[], float] = field(default=time.monotonic, repr=False)

    def say(self, text: str) -> None:
        self.notice = text
        self.notice_at = self.time_s()

    def current_notice(self) -> str:
        if self.notice and self.time_s() - self.notice_at <= NOTICE_S:
            return self.notice
        return ""

    def selection(self, snapshot: StudySnapshot) -> int | None:
        """The selected arm if it is still on the board, else the first row's (or None)."""
        arms = ordered_arms(snapshot)
        if not arms:
            return None
        if self.selected is None or all(row.arm != self.selected for row in arms):
            self.selected = arms[0].arm
        return self.selected

    def move(self, snapshot: StudySnapshot, step: int) -> None:
        arms = ordered_arms(snapshot)
        if not arms:
            return
        current = self.selection(snapshot)
        position = next(i for i, row in enumerate(arms) if row.arm == current)
        self.selected = arms[max(0, min(len(arms) - 1, position + step))].arm
