"""LUCB over a finite pool with pulls in flight (Kalyanakrishnan et al. 2012, "PAC subset
selection in stochastic multi-armed bandits", adapted to sampling without replacement).

Each step pulls the empirical leader and its strongest challenger (highest upper bound),
whichever is less certain; pulls in flight count in the width (virtual counts) and each arm has a
cap on pending pulls, so hundreds of free slots spread over the arms that decide the winner
instead of herding onto one. Arms whose upper bound falls below another arm's lower bound are
eliminated. It stops when the leader's lower bound clears every other arm's upper bound minus
epsilon: with the union bounds of `engine.search.bounds`, the pick is epsilon-good with
probability at least 1 - delta.
"""

from __future__ import annotations

import numpy as np

from engine.search._base import BasePolicy, Pull
from engine.search.bounds import arm_delta, hard_bounds, radius

__all__ = ["LUCB"]


class LUCB(BasePolicy):
    name = "lucb"

    def _leader_and_challenger(self) -> tuple[int, int | None, np.ndarray, np.ndarray]:
        lower, upper = self.bounds()
        candidates = self.candidates()
        mean = np.where(candidates, self.means(), -np.inf)
        leader = int(np.argmax(mean))
        others = np.where(candidates, upper, -np.inf)
        others[leader] = -np.inf
        challenger = int(np.argmax(others)) if np.isfinite(others).any() else None
        return leader, challenger, lower, upper

    def _stop_rule(self) -> bool:
        if self.num_arms == 1:
            return bool(self.count[0] >= self.n) or False
        leader, challenger, lower, upper = self._leader_and_challenger()
        if challenger is None:
            return True
        return bool(lower[leader] > upper[challenger] - self.epsilon)

    def recommendation(self) -> int | None:
        if self.num_arms and self._stop_rule():
            return self._leader_and_challenger()[0]
        return super().recommendation()

    def _after_observe(self, arm: int) -> None:
        lower, upper = self.bounds()
        candidates = self.candidates()
        best_lower = float(np.max(np.where(candidates, lower, -np.inf)))
        self.eliminated[: self.num_arms] |= candidates & (upper < best_lower)

    def _virtual_bounds_of(self, arm: int) -> tuple[float, float]:
        count = np.array([self.count[arm] + self.pending[arm]])
        mean = self.total[arm] / self.count[arm] if self.count[arm] else 0.5
        second = self.total_sq[arm] / self.count[arm] if self.count[arm] else 0.25
        width = radius(
            count,
            np.array([max(second - mean * mean, 0.0)]),
            n=self.n,
            arm_deltas=arm_delta(
                arm, delta=self.delta, initial_arms=self.initial_arms or self.num_arms
            ),
        )[0]
        low, high = hard_bounds(self.total[arm : arm + 1], self.count[arm : arm + 1], self.n)
        return max(mean - width, float(low[0])), min(mean + width, float(high[0]))

    def _select(self, k: int) -> list[Pull]:
        lower, upper = self.bounds(virtual=True)
        mean = self.means()
        pullable = np.array([self.can_pull(a) for a in range(self.num_arms)])
        live = self.live()
        pulls: list[Pull] = []
        while len(pulls) < k and pullable.any():
            leader_scores = np.where(live, mean, -np.inf)
            leader = int(np.argmax(leader_scores))
            challenger_scores = np.where(live, upper, -np.inf)
            challenger_scores[leader] = -np.inf
            options = [leader]
            if np.isfinite(challenger_scores).any():
                options.append(int(np.argmax(challenger_scores)))
            options = [a for a in options if pullable[a]]
            if options:
                arm = max(options, key=lambda a: upper[a] - lower[a])
            else:
                # both deciding arms are saturated: the most optimistic arm that can take a pull
                arm = int(np.argmax(np.where(pullable, upper, -np.inf)))
            pull = self._take(arm)
            if pull is None:
                pullable[arm] = False
                continue
            pulls.append(pull)
            lower[arm], upper[arm] = self._virtual_bounds_of(arm)
            pullable[arm] = self.can_pull(arm)
        return pulls
