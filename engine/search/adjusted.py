"""Each arm's mean as the pick should read it: corrected for which examples it was scored on,
and shrunk by how few they are (docs/design.md, "Scheduler").

Every arm walks the same order of the pool, so an arm added late, or left behind, has been
scored on the first examples of the order only, while the leaders went further. Its raw mean
then reads the difficulty of its examples as much as its own quality, and, resting on few
examples, it is the most often extreme of the means: at a budget stop the best raw mean is often
a late arm that happened to start well (the winner's curse).

The estimate is that of the two-way model with a random arm effect, as in a mixed model for a
crossed design: reward = mean + theta_a + beta_e + noise.

- theta (each arm) and beta (each example) by least squares on the cells seen, by alternating
  means (backfitting, warm-started from the last fit, so a new observation costs an iteration
  or two); beta is centred over the examples seen. The fit keeps only sums (each arm's and each
  example's rewards and counts, and which cells were seen), so a sweep is two matrix-vector
  products. On the examples two arms share, theta_b - theta_a moves with their paired
  difference, not with what either saw alone.
- the noise variance from the residuals, the spread of the true arm effects by the method of
  moments (the thetas' variance less the average noise variance of a theta, at least a tiny
  positive value), and each theta shrunk towards their average by tau^2 / (tau^2 +
  sigma^2 / count): the best linear unbiased predictor of the arm's effect. An arm seen on a
  few examples moves towards the average; one seen on the whole pool hardly moves.

These estimates order the arms for the pick and the leader only: the confidence bounds, the
eliminations and the stopping rule never use them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["AdjustedMeans"]

FloatArray = NDArray[np.float64]
#: the backfitting stops once no effect moves by more than this
TOLERANCE = 1e-7
MAX_SWEEPS = 200
#: between fresh fits, a fit is reused until the observations grow by this share
STALE_SHARE = 0.01


class AdjustedMeans:
    """Adjusted, shrunk means of the arms on a pool of `n` examples, fed one observation at a
    time; an arm with none gets the value `unseen`. The fit is redone only when asked after an
    observation was added."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._seen: FloatArray = np.zeros((0, n))  # 1.0 where the arm was scored on the example
        self._row_sum: FloatArray = np.zeros(0)
        self._count: FloatArray = np.zeros(0)
        self._column_sum = np.zeros(n)
        self._column_count = np.zeros(n)
        self._square_sum = 0.0
        self._k = 0
        self._theta: FloatArray = np.zeros(0)
        self._beta = np.zeros(n)
        self._fitted: tuple[int, int] | None = None
        self._value: FloatArray = np.zeros(0)
        self._observations = 0

    def observe(self, arm: int, example: int, reward: float) -> None:
        if arm >= len(self._count):
            self._grow(arm + 1)
        self._k = max(self._k, arm + 1)
        self._seen[arm, example] = 1.0
        self._row_sum[arm] += reward
        self._count[arm] += 1.0
        self._column_sum[example] += reward
        self._column_count[example] += 1.0
        self._square_sum += reward * reward
        self._observations += 1

    def _grow(self, arms: int) -> None:
        size = max(16, 2 * len(self._count), arms)
        old = len(self._count)
        seen = np.zeros((size, self.n))
        seen[:old] = self._seen
        self._seen = seen
        self._row_sum, self._count, self._theta = (
            np.concatenate([a, np.zeros(size - old)])
            for a in (self._row_sum, self._count, self._theta)
        )

    def estimate(self, arms: int, unseen: float = 0.5, fresh: bool = True) -> FloatArray:
        """The estimates of arms 0..arms-1; unless `fresh`, the last fit serves while the
        arms are the same and the observations grew by less than STALE_SHARE (to choose
        pulls, where the fit of each new result would cost more than it changes)."""
        key = (self._observations, arms)
        if key != self._fitted and (fresh or self._stale(key)):
            self._value = self._fit(min(arms, self._k))
            self._fitted = key
        value = np.full(arms, unseen)
        fitted = self._value[:arms]
        value[: len(fitted)] = np.where(self._count[: len(fitted)] > 0, fitted, unseen)
        return value

    def _stale(self, key: tuple[int, int]) -> bool:
        if self._fitted is None or key[1] != self._fitted[1]:
            return True
        return key[0] - self._fitted[0] >= max(1.0, STALE_SHARE * self._fitted[0])

    def _fit(self, k: int) -> FloatArray:
        count, row_sum, seen = self._count[:k], self._row_sum[:k], self._seen[:k]
        rows = count > 0
        arms = int(rows.sum())
        raw = np.divide(row_sum, count, out=np.zeros(k), where=rows)
        if arms < 2:
            return raw
        columns = self._column_count > 0
        per_example = np.maximum(self._column_count, 1.0)
        theta = np.where(rows, self._theta[:k], 0.0)
        beta = self._beta
        for _ in range(MAX_SWEEPS):
            new_beta = np.where(columns, (self._column_sum - seen.T @ theta) / per_example, 0.0)
            new_beta[columns] -= new_beta[columns].mean()
            new_theta = np.divide(row_sum - seen @ new_beta, count, out=np.zeros(k), where=rows)
            moved = max(np.abs(new_theta - theta).max(), np.abs(new_beta - beta).max())
            theta, beta = new_theta, new_beta
            if moved <= TOLERANCE:
                break
        self._theta[:k], self._beta = theta, beta
        cells = float(count.sum())
        freedom = cells - arms - float(columns.sum()) + 1.0
        if freedom < 1.0:
            return theta
        squares = (
            self._square_sum
            - 2.0 * float(theta @ row_sum)
            - 2.0 * float(beta @ self._column_sum)
            + float(count @ (theta * theta))
            + float(self._column_count @ (beta * beta))
            + 2.0 * float(theta @ (seen @ beta))
        )
        noise = max(squares, 0.0) / freedom
        centre = float(theta[rows].mean())
        spread = max(float(theta[rows].var()) - float((noise / count[rows]).mean()), 1e-6)
        weight = spread / (spread + noise / np.maximum(count, 1.0))
        shrunk: FloatArray = np.where(rows, centre + weight * (theta - centre), 0.0)
        return shrunk
