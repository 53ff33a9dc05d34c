"""Confidence bounds for the mean of a finite pool sampled without replacement.

An arm's true score is its mean over the scoring pool of `n` examples; after `m` draws without
replacement with reward sum `s` (rewards in [0, 1]):

- hard bounds: the unseen `n - m` rewards lie in [0, 1], so the pool mean lies in
  `[s / n, (s + n - m) / n]`; they collapse to the exact score when `m == n`;
- Hoeffding–Serfling and empirical Bernstein–Serfling (Bardenet & Maillard 2015, "Concentration
  inequalities for sampling without replacement", Bernoulli 21(3), Thm 2.4 and Thm 3.5 with
  the correction factor rho_m), made uniform over the `n` possible sample sizes by a union bound.

Everything is vectorised over arms: the scheduler evaluates bounds of every arm on every step.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["arm_delta", "hard_bounds", "radius", "serfling_rho"]

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
    stays below delta.
    """
    k = np.asarray(index, dtype=np.float64)
    initial = max(initial_arms, 1)
    late = k - initial + 1.0
    return np.where(
        k < initial,
        delta / 2.0 / initial,
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
