"""Successive halving in rungs (Karnin et al. 2013; asynchronous rungs as in ASHA, Li et al. 2020).

Rung i asks for min(n, r0 * eta^i) pulls of an arm (cumulative: earlier pulls count). Work goes
breadth first: every arm completes rung 0 before promotions are served, so with all arms present
at the start this is sequential halving with cumulative means; an arm that streams in later
starts at rung 0 and is promoted as soon as it ranks in the top 1/eta of the arms that completed
its rung (the asynchronous rule). With a budget, r0 is the largest value in [8, 16] whose whole
schedule fits it. When the budget ends, the recommendation is the arm with the best lower bound
among those that reached the highest rung.
"""

from __future__ import annotations

import math

import numpy as np

from engine.search._base import BasePolicy, Pull

__all__ = ["SuccessiveHalving"]


class SuccessiveHalving(BasePolicy):
    name = "halving"

    def __init__(self, *, eta: int = 3, first_rung: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.eta = eta
        self._first_rung = first_rung
        self.rung = np.zeros(0, dtype=np.int64)  # rung the arm is working towards

    def _on_add(self, arm: int) -> None:
        if len(self.rung) < len(self.count):
            grown = np.zeros(len(self.count), dtype=np.int64)
            grown[: len(self.rung)] = self.rung
            self.rung = grown

    def _schedule_cost(self, r0: int, arms: int) -> int:
        cost, survivors, level = 0, arms, 0
        while survivors >= 1:
            cost += survivors * self.target(level, r0)
            if self.target(level, r0) >= self.n or survivors == 1:
                break
            survivors = max(1, math.ceil(survivors / self.eta))
            level += 1
        return cost

    @property
    def r0(self) -> int:
        if self._first_rung is not None:
            return self._first_rung
        if self.budget is None:
            return 12
        arms = max(self.num_arms, self.initial_arms, 1)
        fitting = [r for r in range(16, 7, -1) if self._schedule_cost(r, arms) <= self.budget]
        return fitting[0] if fitting else 8

    def target(self, level: int, r0: int | None = None) -> int:
        return int(min(self.n, (r0 or self.r0) * self.eta**level))

    def _completed(self, level: int) -> np.ndarray:
        k = self.num_arms
        return self.candidates() & (self.count[:k] >= self.target(level))

    def _promotable(self, arm: int, means: np.ndarray | None = None) -> bool:
        level = int(self.rung[arm])
        if self.count[arm] < self.target(level) or self.target(level) >= self.n:
            return False
        means = self.means() if means is None else means
        # rank by the mean over the rung's own examples count (cumulative means)
        done = self._completed(level)
        ranked = np.sort(means[done])[::-1]
        keep = max(1, len(ranked) // self.eta)
        return bool(means[arm] >= ranked[keep - 1])

    def _select(self, k: int) -> list[Pull]:
        pulls: list[Pull] = []
        live = self.live()
        arms = range(self.num_arms)
        means = self.means()
        for arm in arms:
            if live[arm] and self._promotable(arm, means):
                self.rung[arm] += 1
        # breadth first: lower rungs first, then by mean
        order = sorted(
            (a for a in arms if live[a]),
            key=lambda a: (int(self.rung[a]), -float(means[a])),
        )
        for arm in order:
            need = self.target(int(self.rung[arm])) - int(self.count[arm] + self.pending[arm])
            while need > 0 and len(pulls) < k and self.can_pull(arm):
                pull = self._take(arm)
                if pull is None:
                    break
                pulls.append(pull)
                need -= 1
            if len(pulls) >= k:
                break
        return pulls

    def _anything_left(self) -> bool:
        k = self.num_arms
        if self.pending[:k].sum() > 0:
            return True
        live = self.live()
        means = self.means()
        for arm in range(k):
            if not live[arm]:
                continue
            if self.count[arm] < self.target(int(self.rung[arm])):
                return True
            if self._promotable(arm, means):
                return True
        return False

    def recommendation(self) -> int | None:
        if self.num_arms == 0:
            return None
        candidates = self.candidates()
        top = int(np.max(np.where(candidates, self.count[: self.num_arms], -1)))
        eligible = candidates & (self.count[: self.num_arms] >= top)
        return int(np.argmax(np.where(eligible, self.means(), -np.inf)))
