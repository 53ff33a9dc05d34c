"""Top-two Thompson sampling with a GLR stop (Russo 2016; Jourdan et al. 2022), adapted to a
finite pool sampled without replacement.

Posterior of an arm's pool mean: the observed sum plus the unseen n - m rewards drawn around a
Beta posterior of the arm's rate, so the spread shrinks to zero as the arm is fully evaluated
(the finite-population correction). Each slot draws one posterior sample per arm: the argmax is
the leader; with probability 1/2 the pull goes to a challenger (the argmax of a fresh draw among
the others). Pulls in flight count as virtual observations at the current mean.

The stop is a Gaussian generalised-likelihood-ratio test between the leader and every other arm
with effective counts m (n - 1) / (n - m) (finite-population correction), against the threshold
log((1 + log t) K / delta). This threshold is a heuristic: unlike `lucb`, TTTS's delta is not a
proven guarantee here; the efficiency benchmark measures its error rate.
"""

from __future__ import annotations

import numpy as np

from engine.search._base import BasePolicy, Pull

__all__ = ["TopTwoThompson"]


class TopTwoThompson(BasePolicy):
    name = "ttts"
    leader_share = 0.5

    def _posterior_sample(self, virtual: np.ndarray) -> np.ndarray:
        k = self.num_arms
        count = self.count[:k] + virtual
        total = self.total[:k] + virtual * self.means()
        rate = self.rng.beta(1.0 + total, 1.0 + np.maximum(count - total, 0.0))
        unseen = np.maximum(self.n - count, 0.0)
        spread = np.sqrt(unseen * rate * (1.0 - rate))
        rest = unseen * rate + spread * self.rng.standard_normal(k)
        sample: np.ndarray = (total + np.clip(rest, 0.0, unseen)) / self.n
        return sample

    def _select(self, k: int) -> list[Pull]:
        live = self.live()
        virtual = self.pending[: self.num_arms].copy()
        pullable = np.array([self.can_pull(a) for a in range(self.num_arms)]) & live
        pulls: list[Pull] = []
        while len(pulls) < k and pullable.any():
            # the leader is drawn among all live arms; a saturated leader hands its slot on
            sample = np.where(live, self._posterior_sample(virtual), -np.inf)
            arm = int(np.argmax(sample))
            if not pullable[arm] or self.rng.random() >= self.leader_share:
                second = np.where(pullable, self._posterior_sample(virtual), -np.inf)
                if pullable.sum() > 1:
                    second[arm] = -np.inf  # the challenger: best of a fresh draw among the others
                arm = int(np.argmax(second))
            pull = self._take(arm)
            if pull is None:
                pullable[arm] = False
                continue
            pulls.append(pull)
            virtual[arm] += 1
            pullable[arm] = self.can_pull(arm)
        return pulls

    def _stop_rule(self) -> bool:
        k = self.num_arms
        if k < 2:
            return bool(k == 1 and self.count[0] >= self.n)
        count = self.count[:k]
        if (count[self.candidates()] < 1).any():
            return False
        mean = np.where(self.candidates(), self.means(), -np.inf)
        leader = int(np.argmax(mean))
        effective = np.where(
            count >= self.n, 1e12, count * (self.n - 1) / np.maximum(self.n - count, 1e-9)
        )
        variance = np.maximum(
            np.clip(self.means(), 0.02, 0.98) * (1 - np.clip(self.means(), 0.02, 0.98)), 1e-4
        )
        gap = mean[leader] - mean + self.epsilon
        scale = variance[leader] / effective[leader] + variance / effective
        statistic = np.where(gap > 0, gap * gap / (2.0 * scale), 0.0)
        statistic[leader] = np.inf
        statistic[~self.candidates()] = np.inf
        t = max(float(count.sum()), 2.0)
        threshold = np.log((1.0 + np.log(t)) * k / self.delta)
        return bool(statistic.min() > threshold)

    def recommendation(self) -> int | None:
        if self.num_arms and self._stop_rule():
            return int(np.argmax(np.where(self.candidates(), self.means(), -np.inf)))
        return super().recommendation()
