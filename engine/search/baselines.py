"""Baselines, implemented faithfully so that comparisons with them are fair.

- `ape-filter`: the paper's adaptive filter (Zhou et al. 2023, section 3.2, "efficient score
  estimation"): every surviving candidate is scored on the next block of `block` examples, those
  at or above the median cumulative score survive, until `finalists` remain; the finalists are
  then evaluated on the whole pool and the best is picked.
- `ucb`: the APE reference code's batched UCB1 (keirp/automatic_prompt_engineer,
  `evaluation/bandits.py`): each round the top third of arms by mean + c sqrt(ln N / n_i) get a
  block of `block` examples, until the budget is spent; the best mean wins.
- `uniform`: round robin until the budget is spent.
- `full`: every arm on every example (exact scores; the cost denominator).
"""

from __future__ import annotations

import math

import numpy as np

from engine.search.policy import BasePolicy, Pull

__all__ = ["APEFilter", "BatchedUCB", "FullEvaluation", "Uniform"]


def _fill(policy: BasePolicy, arm: int, count: int, pulls: list[Pull], k: int) -> None:
    while count > 0 and len(pulls) < k and policy.available(arm) > 0:
        pull = policy._take(arm)
        if pull is None:
            return
        pulls.append(pull)
        count -= 1


class Uniform(BasePolicy):
    name = "uniform"

    def _select(self, k: int) -> list[Pull]:
        pulls: list[Pull] = []
        live = self.live()
        while len(pulls) < k:
            load = np.where(
                live & (self.count[: self.num_arms] + self.pending[: self.num_arms] < self.n),
                self.count[: self.num_arms] + self.pending[: self.num_arms],
                np.inf,
            )
            if not np.isfinite(load).any():
                break
            pull = self._take(int(np.argmin(load)))
            if pull is None:
                break
            pulls.append(pull)
        return pulls

    def recommendation(self) -> int | None:
        if self.num_arms == 0:
            return None
        if not self.budget_exhausted():
            return int(np.argmax(np.where(self.recommendable(), self.means(), -np.inf)))
        return super().recommendation()


class FullEvaluation(Uniform):
    name = "full"

    def set_budget(self, total_pulls: int | None) -> None:
        """Full evaluation has no budget: it is the cost every other policy is measured against."""
        self.scoring_calls = None


class BatchedUCB(BasePolicy):
    name = "ucb"

    def __init__(self, *, c: float = 1.0, block: int = 5, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.c = c
        self.block = block

    def _select(self, k: int) -> list[Pull]:
        if self.pending[: self.num_arms].sum() > 0:
            return []  # rounds are synchronous, as in the reference code
        count = self.count[: self.num_arms]
        total = max(float(count.sum()), 1.0)
        bonus = self.c * np.sqrt(np.log(total) / np.maximum(count, 1e-9))
        score = np.where(count > 0, self.means() + bonus, np.inf)
        score = np.where(self.live() & (count < self.n), score, -np.inf)
        chosen = [
            a for a in np.argsort(-score, kind="stable") if np.isfinite(score[a]) or score[a] > 0
        ]
        chosen = [int(a) for a in chosen if score[a] != -np.inf][
            : max(1, math.ceil(self.num_arms / 3))
        ]
        pulls: list[Pull] = []
        for arm in chosen:
            _fill(self, arm, self.block, pulls, k)
        return pulls

    def recommendation(self) -> int | None:
        if self.num_arms == 0:
            return None
        if not self.budget_exhausted():
            return int(np.argmax(np.where(self.recommendable(), self.means(), -np.inf)))
        return super().recommendation()


class APEFilter(BasePolicy):
    name = "ape-filter"

    def __init__(self, *, block: int = 5, finalists: int = 3, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.block = block
        self.finalists = finalists
        self.stage = 1

    def _survivors(self) -> np.ndarray:
        return self.live()

    def _target(self) -> int:
        survivors = int(self._survivors().sum())
        if survivors <= self.finalists:
            return self.n
        return min(self.n, self.stage * self.block)

    def _advance(self) -> None:
        """Close a stage when every survivor has its block: keep those at or above the median."""
        live = self._survivors()
        target = self._target()
        k = self.num_arms
        if target >= self.n or self.pending[:k].sum() > 0:
            return
        if (self.count[:k][live] < target).any():
            return
        means = self.means()
        median = float(np.median(means[live]))
        drop = live & (means < median)
        if live.sum() - drop.sum() < self.finalists:
            ranked = np.argsort(-np.where(live, means, -np.inf), kind="stable")
            keep = set(int(a) for a in ranked[: self.finalists])
            drop = live & np.array([a not in keep for a in range(k)])
        self.eliminated[:k] |= drop
        self.stage += 1

    def _select(self, k: int) -> list[Pull]:
        self._advance()
        target = self._target()
        pulls: list[Pull] = []
        live = self._survivors()
        for arm in range(self.num_arms):
            if live[arm]:
                need = target - int(self.count[arm] + self.pending[arm])
                _fill(self, arm, need, pulls, k)
            if len(pulls) >= k:
                break
        return pulls

    def _anything_left(self) -> bool:
        self._advance()
        return super()._anything_left()

    def recommendation(self) -> int | None:
        if self.num_arms == 0:
            return None
        if not self.budget_exhausted():
            live = self._survivors()
            return int(np.argmax(np.where(live, self.means(), -np.inf)))
        return super().recommendation()
