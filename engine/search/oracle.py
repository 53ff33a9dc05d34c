"""The oracle allocation: Garivier & Kaufmann (2016), "Optimal best arm identification with fixed
confidence" (COLT), Theorem 1 and Lemmas 3-4, for Bernoulli arms.

T*(mu)^{-1} = sup_w min_{a != 1} [w_1 kl(mu_1, m_a) + w_a kl(mu_a, m_a)], m_a the w-weighted mean
of mu_1 and mu_a; any delta-correct strategy needs at least T*(mu) kl(delta, 1 - delta) samples
in expectation. The epsilon-good version replaces the alternative "arm a beats arm 1" by "arm a
beats arm 1 by more than epsilon". For a finite pool of n examples sampled without replacement,
m with-replacement samples carry the information of n m / (n + m - 1) draws (equal variance of
the mean), which turns the oracle's counts into benchmark denominators.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "bernoulli_kl",
    "characteristic_time",
    "finite_population_draws",
    "lower_bound_samples",
    "optimal_weights",
]

_EPS = 1e-12


def bernoulli_kl(
    p: float | NDArray[np.float64], q: float | NDArray[np.float64]
) -> NDArray[np.float64]:
    p = np.clip(p, _EPS, 1 - _EPS)
    q = np.clip(q, _EPS, 1 - _EPS)
    return np.asarray(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)))


def _pair_cost(w1: float, wa: float, mu1: float, mua: float, epsilon: float) -> float:
    """min over alternatives lambda_a >= lambda_1 + epsilon of the weighted KL cost."""
    if mua >= mu1 - epsilon:
        return 0.0
    # cost(l) = w1 kl(mu1, l) + wa kl(mua, l + eps), l in [mua - eps, mu1]: convex, golden search
    lo, hi = max(mua - epsilon, _EPS), min(mu1, 1 - epsilon - _EPS)

    def cost(x: float) -> float:
        return float(w1 * bernoulli_kl(mu1, x) + wa * bernoulli_kl(mua, x + epsilon))

    ratio = (np.sqrt(5) - 1) / 2
    a, b = lo, hi
    for _ in range(80):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if cost(c) < cost(d):
            b = d
        else:
            a = c
    return cost((a + b) / 2)


def _g(x: float, mu1: float, mua: float) -> float:
    m = (mu1 + x * mua) / (1 + x)
    return float(bernoulli_kl(mu1, m) + x * bernoulli_kl(mua, m))


def _x_of_y(y: float, mu1: float, mua: float) -> float:
    lo, hi = 0.0, 1.0
    while _g(hi, mu1, mua) < y:
        hi *= 2
        if hi > 1e12:
            return hi
    for _ in range(100):
        mid = (lo + hi) / 2
        if _g(mid, mu1, mua) < y:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def optimal_weights(
    mu: NDArray[np.float64] | list[float], epsilon: float = 0.0
) -> NDArray[np.float64]:
    """The oracle's sampling proportions w*(mu) (in the order given)."""
    mu = np.asarray(mu, dtype=np.float64)
    best = int(np.argmax(mu))
    others = [a for a in range(len(mu)) if a != best]
    if epsilon > 0:
        return _epsilon_weights(mu, epsilon)
    mu1 = float(mu[best])
    ymax = min(float(bernoulli_kl(mu1, mu[a])) for a in others)

    def total(y: float) -> float:
        s = 0.0
        for a in others:
            x = _x_of_y(y, mu1, float(mu[a]))
            m = (mu1 + x * float(mu[a])) / (1 + x)
            s += float(bernoulli_kl(mu1, m)) / max(float(bernoulli_kl(float(mu[a]), m)), _EPS)
        return s - 1.0

    lo, hi = 0.0, ymax * (1 - 1e-9)
    for _ in range(100):
        mid = (lo + hi) / 2
        if total(mid) < 0:
            lo = mid
        else:
            hi = mid
    y = (lo + hi) / 2
    x = np.zeros(len(mu))
    x[best] = 1.0
    for a in others:
        x[a] = _x_of_y(y, mu1, float(mu[a]))
    weights: NDArray[np.float64] = x / x.sum()
    return weights


def _epsilon_weights(
    mu: NDArray[np.float64], epsilon: float, steps: int = 3000
) -> NDArray[np.float64]:
    """Weights for epsilon-good identification by exponentiated subgradient ascent on the simplex."""
    best = int(np.argmax(mu))
    k = len(mu)
    w = np.full(k, 1.0 / k)
    averaged = np.zeros(k)
    for step in range(1, steps + 1):
        costs = [
            (_pair_cost(w[best], w[a], mu[best], mu[a], epsilon), a) for a in range(k) if a != best
        ]
        _, worst = min(costs)
        gradient = np.zeros(k)
        h = 1e-6
        base = _pair_cost(w[best], w[worst], mu[best], mu[worst], epsilon)
        gradient[best] = (
            _pair_cost(w[best] + h, w[worst], mu[best], mu[worst], epsilon) - base
        ) / h
        gradient[worst] = (
            _pair_cost(w[best], w[worst] + h, mu[best], mu[worst], epsilon) - base
        ) / h
        w = w * np.exp(0.5 / np.sqrt(step) * gradient / max(np.abs(gradient).max(), _EPS))
        w /= w.sum()
        averaged += w
    return averaged / steps


def characteristic_time(mu: NDArray[np.float64] | list[float], epsilon: float = 0.0) -> float:
    """T*(mu): the oracle needs about T* kl(delta, 1 - delta) samples."""
    mu = np.asarray(mu, dtype=np.float64)
    w = optimal_weights(mu, epsilon)
    best = int(np.argmax(mu))
    value = min(
        _pair_cost(w[best], w[a], mu[best], mu[a], epsilon) for a in range(len(mu)) if a != best
    )
    return float(np.inf if value <= 0 else 1.0 / value)


def finite_population_draws(samples: NDArray[np.float64] | float, n: int) -> NDArray[np.float64]:
    """Draws without replacement from a pool of n that match `samples` with-replacement ones."""
    m = np.asarray(samples, dtype=np.float64)
    return np.minimum(n * m / (n + m - 1.0), n)


def lower_bound_samples(
    mu: NDArray[np.float64] | list[float], delta: float, n: int, epsilon: float = 0.0
) -> float:
    """The oracle's expected cost on a pool of n examples per arm (the efficiency denominator)."""
    mu = np.asarray(mu, dtype=np.float64)
    t_star = characteristic_time(mu, epsilon)
    if not np.isfinite(t_star):
        return float(len(mu) * n)
    total = t_star * float(bernoulli_kl(delta, 1 - delta))
    return float(finite_population_draws(total * optimal_weights(mu, epsilon), n).sum())
