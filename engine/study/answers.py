"""What the study keeps of each candidate's answers, for the proposals that learn from them.

Two things, both rebuilt from the journal's `pull_done` events by the same `StudyState.apply`
that keeps them live (the journal is never read again for them):

- every candidate's reward on every example of the scoring pool it was scored on (`rewards`,
  a candidates x pool matrix, NaN where not scored): the per-example Pareto front of
  `engine.propose.parents` reads it;
- a few of each candidate's answers with their example (`kept`): the first `wrong` answers
  that scored below 1/2 and the first `right` ones at or above it, in the order they came (the
  pool's seeded permutation, so a random sample), each cut to the study's `answer_chars`. A
  reflection is shown some of them, with the example's input and expected output from the task.

Memory is bounded by candidates x pool (4 bytes a cell) and candidates x (wrong + right)
answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.propose.parents import RIGHT_FROM

__all__ = ["AnswerBook", "KeptAnswer", "KeptAnswers"]


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    example: int  # in the scoring pool
    answer: str
    reward: float


@dataclass(slots=True)
class KeptAnswers:
    wrong: list[KeptAnswer] = field(default_factory=list)
    right: list[KeptAnswer] = field(default_factory=list)


class AnswerBook:
    """Per-example rewards of every candidate, and a few of its answers."""

    def __init__(self, *, wrong: int, right: int) -> None:
        self.wrong = wrong
        self.right = right
        self._rewards: NDArray[Any] = np.full((0, 0), np.nan, dtype=np.float32)
        self._arms = 0
        self._examples = 0  # columns in use: the largest example seen + 1
        self._kept: list[KeptAnswers] = []

    def add_arm(self) -> None:
        if self._arms == self._rewards.shape[0]:
            self._grow(max(16, 2 * self._arms), self._rewards.shape[1])
        self._arms += 1
        self._kept.append(KeptAnswers())

    def observe(self, arm: int, example: int, reward: float, answer: str) -> None:
        if example >= self._rewards.shape[1]:
            self._grow(self._rewards.shape[0], max(64, 2 * (example + 1)))
        self._rewards[arm, example] = reward
        self._examples = max(self._examples, example + 1)
        kept = self._kept[arm]
        if reward >= RIGHT_FROM:
            if len(kept.right) < self.right:
                kept.right.append(KeptAnswer(example, answer, reward))
        elif len(kept.wrong) < self.wrong:
            kept.wrong.append(KeptAnswer(example, answer, reward))

    def _grow(self, rows: int, columns: int) -> None:
        grown = np.full((rows, columns), np.nan, dtype=np.float32)
        old = self._rewards
        grown[: old.shape[0], : old.shape[1]] = old
        self._rewards = grown

    def rewards(self) -> NDArray[Any]:
        """Candidates x examples seen: the reward, NaN where not scored (a view: do not
        change it)."""
        return self._rewards[: self._arms, : self._examples]

    def kept(self, arm: int) -> KeptAnswers:
        return self._kept[arm]
