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

from engine.search.certificate import Certificate
from engine.search.policy import BasePolicy, Pull

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

    def certificate(self) -> Certificate:
        """From LUCB's own bounds of each arm's mean: the recommendation is within
        max_b upper_b - lower_rec of the best (proven when that is within epsilon)."""
        arm = self.recommendation()
        if arm is None:
            return Certificate(None, False, 1.0, self.epsilon, self.delta, 0)
        lower, upper = self.bounds()
        rivals = self.candidates()
        rivals[arm] = False
        lead = float(upper[rivals].max() - lower[arm]) if rivals.any() else 0.0
        supported = min(max(lead, 0.0), 1.0)
        if supported <= self.epsilon:
            return Certificate(arm, True, supported, self.epsilon, self.delta, 0)
        return Certificate(arm, False, supported, self.epsilon, self.delta, self._more(arm, rivals))

    def _more(self, arm: int, rivals: np.ndarray) -> int:
        """Calls until each rival's bound would clear, if the means held and the widths shrank
        as one over the square root of the count (each arm capped at the pool)."""
        lower, upper = self.bounds()
        means, count = self.means(), self.count[: self.num_arms]
        needed = 0.0
        leader_needed = float(count[arm])
        for rival in np.flatnonzero(rivals & (upper - lower[arm] > self.epsilon)):
            room = self.epsilon - (means[rival] - means[arm])
            width = (upper[rival] - means[rival]) + (means[arm] - lower[arm])
            scale = (width / room) ** 2 if room > 0 else np.inf
            target = min(max(count[rival], 1.0) * scale, float(self.n))
            needed += max(target - count[rival], 0.0)
            leader_needed = max(leader_needed, min(max(count[arm], 1.0) * scale, float(self.n)))
        return int(np.ceil(needed + leader_needed - count[arm]))

    def _after_observe(self, arm: int) -> None:
        k = self.num_arms
        candidates = self.candidates()
        best_lower = float(np.max(np.where(candidates, self.lower[:k], -np.inf)))
        self.eliminated[:k] |= candidates & (self.upper[:k] < best_lower)

    def _virtual_bounds_of(self, arm: int) -> tuple[float, float]:
        return self.arm_bounds(arm, int(self.pending[arm]))

    def _select(self, k: int) -> list[Pull]:
        lower, upper = self.bounds(virtual=True)
        mean = self.means()
        pullable = self.pullable()
        live = self.live()
        pulls: list[Pull] = []
        idle = self.pending[: self.num_arms].sum() == 0
        # among arms with no result yet, ties go to the one with fewer pulls in flight, so a
        # first batch spreads; once results are in, LUCB keeps at one challenger at a time
        unseen = self.count[: self.num_arms] == 0
        taken = self.pending[: self.num_arms].astype(float)
        while len(pulls) < k and pullable.any():
            tie_break = 1e-9 * taken * unseen
            leader_scores = np.where(live, mean - tie_break, -np.inf)
            leader = int(np.argmax(leader_scores))
            # arms the pulls already in flight are not expected to settle: a challenger is open
            # while its virtual upper bound, less epsilon, still reaches the leader's lower bound
            open_arms = live & (upper - self.epsilon >= lower[leader])
            open_arms[leader] = False
            if not open_arms.any() and not (idle and not pulls):
                break  # what is in flight should decide it: wait for the results
            challenger_scores = np.where(live, upper - tie_break, -np.inf)
            challenger_scores[leader] = -np.inf
            options = [leader]
            if np.isfinite(challenger_scores).any():
                options.append(int(np.argmax(challenger_scores)))
            options = [a for a in options if pullable[a]]
            if options:
                arm = max(options, key=lambda a: upper[a] - lower[a] - tie_break[a])
            else:
                # both deciding arms are saturated: the most optimistic open arm
                candidates = pullable & open_arms
                if not candidates.any():
                    if pulls or not idle:
                        break
                    candidates = pullable
                arm = int(np.argmax(np.where(candidates, upper - tie_break, -np.inf)))
            pull = self._take(arm)
            if pull is None:
                pullable[arm] = False
                continue
            pulls.append(pull)
            taken[arm] += 1
            lower[arm], upper[arm] = self._virtual_bounds_of(arm)
            pullable[arm] = self.can_pull(arm)
        return pulls
