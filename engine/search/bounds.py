"""Confidence bounds for the mean of a finite pool sampled without replacement.

An arm's true score is its mean over the scoring pool of `n` examples; after `m` draws without
replacement with reward sum `s` (rewards in [0, 1]):

- hard bounds: the unseen `n - m` rewards lie in [0, 1], so the pool mean lies in
  `[s / n, (s + n - m) / n]`; they collapse to the exact score when `m == n`;
- Hoeffding–Serfling and empirical Bernstein–Serfling (Bardenet & Maillard 2015, "Concentration
  inequalities for sampling without replacement", Bernoulli 21(3), Thm 2.4 and Thm 3.5 with
  the correction factor rho_m), made uniform over the `n` possible sample sizes by a union bound;
  valid for any rewards in [0, 1];
- for 0/1 rewards (exact match and the other right-or-wrong metrics), the exact hypergeometric
  bounds: the number of ones seen in `m` draws from a pool holding `S` ones is hypergeometric,
  and the bound keeps every `S` that the observed count does not reject at level delta' on
  either side (the without-replacement analogue of Clopper–Pearson). Much tighter than the
  Serfling bounds, mostly for scores near 0 or 1 and for arms past half the pool; also made
  uniform over sample sizes by a union bound.

Everything is vectorised over arms: the scheduler evaluates bounds of every arm on every step.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["HypergeometricBounds", "arm_delta", "hard_bounds", "radius", "serfling_rho"]

FloatArray = NDArray[np.float64]

#: kappa of the empirical Bernstein–Serfling bound (Bardenet & Maillard 2015, Thm 3.5).
_KAPPA = 7.0 / 3.0 + 3.0 / np.sqrt(2.0)


def serfling_rho(m: FloatArray, n: int) -> FloatArray:
    """Serfling's finite-population factor rho_m (Bardenet & Maillard 2015, eq. (3))."""
    m = np.maximum(m, 1.0)
    return np.where(m <= n / 2, 1.0 - (m - 1.0) / n, (1.0 - m / n) * (1.0 + 1.0 / m))


def arm_delta(index: np.ndarray | int, *, delta: float, initial_arms: int) -> FloatArray:
    """Error probability given to the arm with 0-based `index`.

    The first `initial_arms` arms (known at the start) share delta/2 equally; the k-th arm to
    arrive after them gets (delta/2) / (k (k + 1)), so the total over any number of streaming arms
    stays below delta. With no initial arms (`initial_arms=0`) every arm streams: the k-th gets
    delta / (k (k + 1)).
    """
    k = np.asarray(index, dtype=np.float64)
    if initial_arms <= 0:
        return delta / ((k + 1.0) * (k + 2.0))
    late = k - initial_arms + 1.0
    return np.where(
        k < initial_arms,
        delta / 2.0 / initial_arms,
        delta / 2.0 / np.maximum(late * (late + 1.0), 1.0),
    )


def radius(
    count: FloatArray,
    variance: FloatArray,
    *,
    n: int,
    arm_deltas: FloatArray,
) -> FloatArray:
    """Half-width of a two-sided bound valid uniformly over sample sizes 1..n.

    Each arm's delta is split over 2 sides x 2 inequalities x n sample sizes; the result is the
    smaller of the Hoeffding–Serfling and empirical Bernstein–Serfling radii (each valid on its
    own share). Arms with no draws get an infinite radius; a fully drawn arm gets 0.
    """
    m = np.maximum(count, 1.0)
    log_term = np.log(4.0 * n / arm_deltas)
    rho = serfling_rho(m, n)
    hoeffding = np.sqrt(rho * log_term / (2.0 * m))
    bernstein_log = np.log(5.0 * 4.0 * n / arm_deltas)
    bernstein = (
        np.sqrt(np.maximum(variance, 0.0)) * np.sqrt(2.0 * rho * bernstein_log / m)
        + _KAPPA * bernstein_log / m
    )
    width = np.minimum(hoeffding, bernstein)
    width = np.where(count < 1.0, np.inf, width)
    return np.where(count >= n, 0.0, width)


def hard_bounds(total: FloatArray, count: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """The pool mean's range whatever the unseen rewards are."""
    return total / n, (total + (n - count)) / n


class HypergeometricBounds:
    """Exact bounds on the mean of a 0/1 pool of `n` after `m` draws without replacement.

    For an arm given error probability `arm_delta`, each of the `n` sample sizes and each side
    gets delta' = arm_delta / (2 n), so the bounds hold for all sample sizes at once (what a
    sequential stop needs). delta' is rounded down to a grid of quarter powers of two (a smaller
    delta' only widens the bound), so arms with nearby deltas share the cached tables: one table
    per (grid level, m) gives the bounds for every count s in 0..m, computed in O(n m) once.
    """

    @staticmethod
    def for_pool(n: int) -> HypergeometricBounds:
        """The shared instance for pools of `n` (its tables are reused by every policy)."""
        return _for_pool(n)

    def __init__(self, n: int) -> None:
        self.n = n
        logs = np.log(np.arange(1, n + 1, dtype=np.float64))
        self._log_factorial = np.concatenate([[0.0], np.cumsum(logs)])
        self._rows: dict[tuple[int, int], tuple[NDArray[np.int64], NDArray[np.int64]]] = {}

    def level(self, arm_delta: float) -> int:
        """Grid level of an arm's per-side, per-size delta' (higher = smaller delta')."""
        side = arm_delta / (2.0 * self.n)
        return int(np.ceil(-4.0 * np.log2(side)))

    def _log_choose(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float64]:
        valid = (b >= 0) & (b <= a)
        a_safe, b_safe = np.where(valid, a, 0), np.where(valid, b, 0)
        f = self._log_factorial
        value: NDArray[np.float64] = np.where(
            valid, f[a_safe] - f[b_safe] - f[a_safe - b_safe], -np.inf
        )
        return value

    def row(self, level: int, m: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Lowest and highest pool count of ones not rejected, for each observed count 0..m."""
        key = (level, m)
        cached = self._rows.get(key)
        if cached is not None:
            return cached
        n = self.n
        ones = np.arange(n + 1, dtype=np.int64)[:, None]  # S, the ones in the pool
        seen = np.arange(m + 1, dtype=np.int64)[None, :]  # x, the ones among the m draws
        log_pmf = (
            self._log_choose(ones, seen)
            + self._log_choose(n - ones, m - seen)
            - self._log_choose(np.array(n), np.array(m))
        )
        pmf = np.exp(log_pmf)
        at_most = np.cumsum(pmf, axis=1)  # P(X <= x | S)
        at_least = np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]  # P(X >= x | S)
        side = 2.0 ** (-level / 4.0)
        # P(X <= s | S) falls as S grows: the highest S it does not reject bounds S above
        kept_high = at_most > side
        high = n - np.argmax(kept_high[::-1], axis=0)
        kept_low = at_least > side
        low = np.argmax(kept_low, axis=0)
        result = (low.astype(np.int64), high.astype(np.int64))
        self._rows[key] = result
        return result

    def bounds(self, ones: int, m: int, level: int) -> tuple[float, float]:
        """Bounds on the pool mean after `ones` ones in `m` draws."""
        if m <= 0:
            return 0.0, 1.0
        if m >= self.n:
            return ones / self.n, ones / self.n
        low, high = self.row(level, m)
        return float(low[ones]) / self.n, float(high[ones]) / self.n


@lru_cache(maxsize=8)
def _for_pool(n: int) -> HypergeometricBounds:
    return HypergeometricBounds(n)


class BettingBounds:
    """Two-sided confidence sequences for each arm's pool mean, by betting (Waudby-Smith &
    Ramdas 2020, "Confidence sequences for sampling without replacement"), on a grid of means.

    After t draws of sum S, the capital against a pool mean m bets on the next draw x against
    mu_t(m) = (N m - S) / (N - t), the mean of the examples not yet drawn if the pool mean were m:
    K+ multiplies by 1 + lambda (x - mu_t(m)) (it grows when m is too low), K- by 1 - lambda (x -
    mu_t(m)) (when m is too high). Under the true m each is a nonnegative martingale, so by
    Ville's inequality it ever reaches 1 / delta' with probability at most delta': valid at every
    stopping time with no union over sample sizes. The bet (the predictable plug-in of
    Waudby-Smith & Ramdas 2023, capped at 3/4) depends on past draws only, so K+ falls and K- grows
    with m, and the values rejected on each side form one interval. A value of m whose examples
    not yet drawn would need a mean outside [0, 1] is impossible and rejected at once.
    """

    def __init__(self, n: int, points: int = 401) -> None:
        self.n = n
        self.grid = np.linspace(0.0, 1.0, points)
        self._k = 0
        self.done: NDArray[Any] = np.zeros(0, dtype=np.int64)
        self.sums: NDArray[Any] = np.zeros(0)
        self.squares: NDArray[Any] = np.zeros(0)
        # log K+ and log K- on the grid, and the values each rejected (or found impossible)
        self.rising: NDArray[Any] = np.zeros((0, points))
        self.falling: NDArray[Any] = np.zeros((0, points))
        self.too_low: NDArray[Any] = np.zeros((0, points), dtype=bool)
        self.too_high: NDArray[Any] = np.zeros((0, points), dtype=bool)
        self.lower: NDArray[Any] = np.zeros(0)
        self.upper: NDArray[Any] = np.ones(0)
        self.threshold: NDArray[Any] = np.zeros(0)

    def grow(self, size: int) -> None:
        old = len(self.done)

        def rows(array: NDArray[Any], fill: object = 0) -> NDArray[Any]:
            grown = np.full((size, *array.shape[1:]), fill, dtype=array.dtype)
            grown[:old] = array[:old]
            return grown

        self.done, self.sums, self.squares = rows(self.done), rows(self.sums), rows(self.squares)
        self.rising, self.falling = rows(self.rising), rows(self.falling)
        self.too_low, self.too_high = rows(self.too_low, False), rows(self.too_high, False)
        self.lower, self.upper = rows(self.lower, 0.0), rows(self.upper, 1.0)
        self.threshold = rows(self.threshold)

    def add_arm(self, arm: int, side_delta: float) -> None:
        """Arm `arm` with error probability `side_delta` on each side."""
        if arm >= len(self.done):
            self.grow(max(16, 2 * len(self.done), arm + 1))
        self.threshold[arm] = np.log(1.0 / side_delta)

    def step(self, arm: int, x: float) -> None:
        """The arm's next draw along its run."""
        n, t = self.n, int(self.done[arm])
        s, s2 = float(self.sums[arm]), float(self.squares[arm])
        variance = (0.25 + max(s2 - s * s / max(t, 1), 0.0)) / (t + 1.0)
        log_term = float(self.threshold[arm])
        bet = min(np.sqrt(2.0 * log_term / (variance * (t + 1.0) * np.log(t + 2.0))), 0.75)
        remaining = (n * self.grid - s) / (n - t)
        self.rising[arm] += np.log(np.maximum(1.0 + bet * (x - remaining), 1e-300))
        self.falling[arm] += np.log(np.maximum(1.0 - bet * (x - remaining), 1e-300))
        t += 1
        s += x
        left = n - t
        after = (n * self.grid - s) / left if left else n * self.grid - s
        # (with a margin: rounding in the sums never proves a value impossible)
        impossible_low = after < -1e-9 if left else after < -1e-9 * n
        impossible_high = after > 1.0 + 1e-9 if left else after > 1e-9 * n
        self.too_low[arm] |= (self.rising[arm] >= log_term) | impossible_low
        self.too_high[arm] |= (self.falling[arm] >= log_term) | impossible_high
        self.done[arm], self.sums[arm], self.squares[arm] = t, s, s2 + x * x
        low, high = self.too_low[arm], self.too_high[arm]
        # K+ falls with m: the values rejected as too low run from 0 up to the largest one
        # rejected, which is the lower bound (the mean lies above it); K- the other way
        if low.any():
            self.lower[arm] = max(self.lower[arm], self.grid[np.flatnonzero(low)[-1]])
        if high.any():
            self.upper[arm] = min(self.upper[arm], self.grid[np.flatnonzero(high)[0]])


class PosteriorRatioBounds:
    """Exact confidence sequences for each arm's pool mean when rewards are 0 or 1, by the
    prior-posterior ratio (Waudby-Smith & Ramdas 2020, "Confidence sequences for sampling without
    replacement", section 2).

    The pool's count of ones N1 gets a uniform prior; after t draws with s ones its posterior is
    s plus a beta-binomial(n - t, 1 + s, 1 + t - s). For the true N1 the ratio prior / posterior
    is a nonnegative martingale with mean 1, so by Ville's inequality it ever reaches 1 / delta'
    with probability at most delta': the values of N1 where it does are rejected, on both sides at
    once, at every stopping time and with no union over sample sizes. The posterior of a uniform
    prior is log-concave, so the values kept form an interval.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._log_factorial = np.concatenate(
            [[0.0], np.cumsum(np.log(np.arange(1, n + 3, dtype=np.float64)))]
        )
        self._ones = np.arange(n + 1)

    def _log_beta(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> FloatArray:
        """log B(a, b) for positive integers."""
        f = self._log_factorial
        value: FloatArray = f[a - 1] + f[b - 1] - f[a + b - 1]
        return value

    def rejected(self, ones: int, draws: int, log_threshold: float) -> NDArray[np.bool_]:
        """The pool counts N1 = 0..n that `ones` ones in `draws` draws reject."""
        n, f = self.n, self._log_factorial
        left = n - draws
        rest = self._ones - ones  # ones among the examples not drawn
        valid = (rest >= 0) & (rest <= left)
        r = np.clip(rest, 0, left)
        log_posterior = (
            f[left] - f[r] - f[left - r]
            + self._log_beta(r + 1 + ones, left - r + 1 + draws - ones)
            - self._log_beta(np.array(1 + ones), np.array(1 + draws - ones))
        )  # fmt: skip
        log_prior = -np.log(n + 1.0)
        result: NDArray[np.bool_] = ~valid | (log_prior - log_posterior >= log_threshold)
        return result
