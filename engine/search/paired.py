"""Paired LUCB: best-arm identification by comparing arms on the examples they share
(docs/design.md, "Scheduler").

The bounds are those of `engine.search.differences`: for every ordered pair (a, b) an upper
confidence sequence for mu_b - mu_a on the examples both have been scored on, at the level of a's
share of delta. An arm is eliminated once some pair proves it worse than another arm (its bound
below 0). The study stops when the leader (the best mean among the arms left) is within epsilon
of every arm left by those bounds: with probability at least 1 - delta the pick is epsilon-good.

Choosing pulls: the comparisons that decide the winner are the leader's against its rivals whose
bound is still above epsilon. Each free slot goes to the rival whose bound is the most open,
counting the pulls in flight as if they had come back with the mean difference so far (virtual
counts). Within that pair it goes to the leader when the rival has walked further along the
shared order (so the pull extends the examples the two share) or when the leader's own bounds
are the wider (as in LUCB: one pull of the leader serves every comparison), and to the rival
otherwise. A cap on the pulls in flight per arm and the virtual counts keep hundreds of free
slots from herding onto one arm; when the pulls in flight should settle every open comparison,
the policy waits for their results.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.search.adjusted import AdjustedMeans
from engine.search.policy import BasePolicy, Pull

__all__ = ["PairedLUCB"]


class PairedLUCB(BasePolicy):
    name = "paired"

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._adjusted = AdjustedMeans(self.n)

    def _skip(self) -> np.ndarray:
        """Arms whose pairs need no update: dropped or eliminated."""
        k = self.num_arms
        skip: np.ndarray = self.dropped[:k] | self.eliminated[:k]
        return skip

    def _after_observe(self, arm: int) -> None:
        k = self.num_arms
        self.pairs.sync(skip=self._skip())
        self.eliminated[:k] |= self.pairs.worse(self.candidates()) & ~self.dropped[:k]

    def estimates(self, fresh: bool = True) -> np.ndarray:
        """Each arm's mean as the leader is chosen by: adjusted for the examples it was scored
        on and shrunk by their number (`engine.search.adjusted`; 1/2 before any result).
        Choosing pulls may use a fit a few results old (`fresh=False`)."""
        return self._adjusted.estimate(self.num_arms, fresh=fresh)

    def _add_observation(self, arm: int, example: int, reward: float) -> None:
        super()._add_observation(arm, example, reward)
        self._adjusted.observe(arm, example, reward)

    def leader(self, fresh: bool = True) -> int | None:
        """The best estimate among the arms left (None before any result)."""
        k = self.num_arms
        live = self.live() & (self.count[:k] > 0)
        if not live.any():
            return None
        # ties go to the arm seen on more examples
        estimates = self.estimates(fresh)
        score = np.where(live, estimates + 1e-9 * self.count[:k] / self.n, -np.inf)
        return int(np.argmax(score))

    def _rivals(self, leader: int) -> np.ndarray:
        rivals: np.ndarray = self.live().copy()
        rivals[leader] = False
        return rivals

    def _stop_rule(self) -> bool:
        k = self.num_arms
        if k == 1:
            return bool(self.count[0] >= self.n)
        # a fit a few results old says whether it is worth a fresh one: the proof is about
        # the leader the pick will be
        return self._proven(self.leader(fresh=False)) and self._proven(self.leader())

    def _proven(self, leader: int | None) -> bool:
        """Every rival left is proven at most epsilon better than `leader`."""
        if leader is None:
            return False
        rivals = self._rivals(leader)
        if not rivals.any():
            return True
        return bool(self.pairs.upper(leader)[rivals].max() <= self.epsilon)

    def bounds(self, *, virtual: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Each arm's own bounds, from its run (those the stopping rule uses; the read-outs
        show them); with `virtual`, LUCB's bounds with the pulls in flight counted in."""
        if virtual:
            return super().bounds(virtual=True)
        k = self.num_arms
        return self.pairs.arm_lower[:k].copy(), self.pairs.arm_upper[:k].copy()

    def recommendation(self) -> int | None:
        if self.num_arms == 0:
            return None
        leader = self.leader()
        if leader is not None:
            return leader
        if self.count[: self.num_arms].sum() == 0:
            return None
        return super().recommendation()

    def _select(self, k: int) -> list[Pull]:
        self.pairs.sync(skip=self._skip())
        leader = self.leader(fresh=False)
        arms = self.num_arms
        walked = (self.count[:arms] + self.pending[:arms]).astype(np.float64)
        if leader is None:  # nothing back yet: the arm walked least leads the first batch
            candidates = self.live()
            if not candidates.any():
                return []
            leader = int(np.argmin(np.where(candidates, walked, np.inf)))
        choice = _Choice(self, leader, walked)
        pullable = self.pullable()
        idle = self.pending[:arms].sum() == 0
        pulls: list[Pull] = []
        while len(pulls) < k:
            arm = choice.next_arm(pullable)
            if arm is None:
                if pulls or not idle:
                    break  # the pulls in flight should settle it: wait for their results
                arm = self._any_arm(walked, pullable)
                if arm is None:
                    break
            pull = self._take(arm)
            if pull is None:
                pullable[arm] = False
                continue
            pulls.append(pull)
            choice.pulled(arm)
            pullable[arm] = self.can_pull(arm)
        return pulls

    def _any_arm(self, walked: np.ndarray, pullable: np.ndarray) -> int | None:
        """Nothing in flight and nothing open by the virtual counts: the live arm walked least,
        so the study never waits on nothing."""
        if not pullable.any():
            return None
        return int(np.argmin(np.where(pullable, walked, np.inf)))


class _Choice:
    """One `select`'s view of the comparisons with the leader, pulls in flight counted in.

    The stopping rule and eliminations use only the proven bounds of the arms' runs; choosing
    pulls may use every result back, including those past a gap in an arm's run (the pulls in
    flight count as draws at the current means, as in LUCB): a rival is worth a pull while the
    pair's bound, or its own bound against the leader's, is still expected above epsilon.
    """

    def __init__(self, policy: PairedLUCB, leader: int, walked: np.ndarray) -> None:
        self.policy = policy
        self.leader = leader
        self.walked = walked
        pairs = policy.pairs
        self.upper = pairs.upper(leader)
        self.difference = pairs.difference(leader)
        self.shared = pairs.shared(leader).astype(np.float64)
        arms = len(walked)
        self.low, self.high = np.zeros(arms), np.ones(arms)
        for arm in np.flatnonzero(policy.live()[:arms] | (np.arange(arms) == leader)):
            self.pulled(int(arm), count=False)
        self.open = policy.live().copy()
        self.open[leader] = False
        self.open &= self.upper > policy.epsilon

    def pulled(self, arm: int, count: bool = True) -> None:
        if count:
            self.walked[arm] += 1
        self.low[arm], self.high[arm] = self.policy.pairs.virtual_bounds(
            arm, float(self.policy.pending[arm])
        )

    def scores(self) -> np.ndarray:
        """Each rival's expected lead bound over the leader once the pulls in flight are back."""
        walked, shared = self.walked, self.shared
        virtual = np.minimum(walked, walked[self.leader])
        shrink = np.sqrt(np.maximum(shared, 1.0) / np.maximum(virtual, 1.0))
        paired = np.where(
            shared > 0,
            self.difference + (self.upper - self.difference) * shrink,
            self.upper - 1e-6 * virtual,
        )
        score: np.ndarray = np.minimum(paired, self.high - self.low[self.leader])
        return score

    def next_arm(self, pullable: np.ndarray) -> int | None:
        """The arm to pull in the most open comparison with the leader (None when the pulls in
        flight should settle every comparison)."""
        policy, leader, walked = self.policy, self.leader, self.walked
        while True:
            score = self.scores()
            wanted = self.open & (score > policy.epsilon)
            if not wanted.any():
                return None
            rival = int(np.argmax(np.where(wanted, score - 1e-9 * walked, -np.inf)))
            # the leader's bounds serve every comparison: as in LUCB the less certain of the
            # two goes first, and the leader whenever it is behind the rival along the order
            width = self.high - self.low
            behind = walked[leader] <= walked[rival]
            if pullable[leader] and (behind or width[leader] > width[rival]):
                return leader
            # a rival runs ahead of the leader by at most one cap of pulls in flight
            if pullable[rival] and walked[rival] < walked[leader] + policy.max_pending:
                return rival
            self.open[rival] = False
