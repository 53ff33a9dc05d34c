"""Top-two Thompson sampling with a GLR stop (Russo 2016; Jourdan et al. 2022), adapted to a
finite pool sampled without replacement.

Posterior of an arm's pool mean: the observed sum plus the unseen n - m rewards drawn around a
Beta posterior of the arm's rate, so the spread shrinks to zero as the arm is fully evaluated
(the finite-population correction). Each slot draws one posterior sample per arm: the argmax is
the leader; with probability 1/2 the pull goes to a challenger (the argmax of a fresh draw among
the others). Pulls in flight count as virtual observations at the current mean.

The stop is a Bernoulli generalised-likelihood-ratio test between the leader and every other arm
taken at its mean less epsilon (the alternative is "arm a beats the leader by more than
epsilon"), with effective counts m (n - 1) / (n - m) (finite-population correction), against
the threshold log((1 + log t) / delta) that Garivier & Kaufmann (2016, "Optimal best arm
identification with fixed confidence", section 6) use in their experiments. This threshold is a
heuristic: unlike `lucb`, TTTS's delta is not a proven guarantee here; the efficiency benchmark
measures its error rate.

With many pulls in flight, the same test with the pending pulls counted as observations at the
current means says which arms the results already on their way should settle: no new pull goes
to a settled arm, and when every arm but the leader is settled the policy waits for the results
instead of filling every free slot.
"""

from __future__ import annotations

import numpy as np

from engine.search.policy import BasePolicy, Pull

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

    def _glr(self, extra: np.ndarray | None = None) -> tuple[int, np.ndarray, float]:
        """Leader, each arm's GLR statistic against it (inf for the leader and dropped arms),
        and the threshold; `extra` pulls count as observations at the current means."""
        k = self.num_arms
        count = self.count[:k] + (extra if extra is not None else 0.0)
        means = self.means()
        candidates = self.candidates()
        leader = int(np.argmax(np.where(candidates, means, -np.inf)))
        effective = np.where(
            count >= self.n, 1e12, count * (self.n - 1) / np.maximum(self.n - count, 1e-9)
        )
        rival = np.maximum(means - self.epsilon, 0.0)  # the alternative: a beats L by epsilon
        mixed = (effective[leader] * means[leader] + effective * rival) / np.maximum(
            effective[leader] + effective, 1e-12
        )
        statistic = np.where(
            (means[leader] > rival) & (count >= 1),
            effective[leader] * _kl(means[leader], mixed) + effective * _kl(rival, mixed),
            0.0,
        )
        statistic[leader] = np.inf
        statistic[~candidates] = np.inf
        t = max(float(count.sum()), 2.0)
        return leader, statistic, float(np.log((1.0 + np.log(t)) / self.delta))

    def _select(self, k: int) -> list[Pull]:
        live = self.live()
        virtual = self.pending[: self.num_arms].copy()
        pullable = self.pullable() & live
        idle = virtual.sum() == 0
        pulls: list[Pull] = []
        while len(pulls) < k and pullable.any():
            must_pull = idle and not pulls  # never leave the study waiting on nothing
            if self.num_arms > 1:
                leader, statistic, threshold = self._glr(virtual)
                settled = statistic > threshold
                settled[leader] = False
                rivals = live & ~settled
                rivals[leader] = False
                if not rivals.any():
                    if not must_pull:
                        break  # what is in flight should settle it: wait for the results
                elif (pullable & ~settled).any():
                    pullable &= ~settled
                elif not must_pull:
                    break
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
        if (self.count[:k][self.candidates()] < 1).any():
            return False
        _, statistic, threshold = self._glr()
        return bool(statistic.min() > threshold)

    def recommendation(self) -> int | None:
        if self.num_arms and self._stop_rule():
            return int(np.argmax(np.where(self.candidates(), self.means(), -np.inf)))
        return super().recommendation()


def _kl(p: np.ndarray | float, q: np.ndarray) -> np.ndarray:
    """Bernoulli Kullback-Leibler divergence kl(p, q), clipped away from 0 and 1."""
    p = np.clip(p, 1e-9, 1.0 - 1e-9)
    q = np.clip(q, 1e-9, 1.0 - 1e-9)
    value: np.ndarray = p * np.log(p / q) + (1.0 - p) * np.log((1.0 - p) / (1.0 - q))
    return value
