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
    "kl_inf_above",
    "lower_bound_samples",
    "optimal_weights",
    "paired_lower_bound_samples",
]

_EPS = 1e-12


def bernoulli_kl(
    p: float | NDArray[np.float64], q: float | NDArray[np.float64]
) -> NDArray[np.float64]:
    p = np.clip(p, _EPS, 1 - _EPS)
    q = np.clip(q, _EPS, 1 - _EPS)
    return np.asarray(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)))


def _pair_costs(
    w1: float, wa: NDArray[np.float64], mu1: float, mua: NDArray[np.float64], epsilon: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """For each arm a: min over alternatives lambda_a >= lambda_1 + epsilon of the weighted KL
    cost, and the minimising lambda_1 (vectorised over arms; 0 where arm a cannot win).

    cost(l) = w1 kl(mu1, l) + wa kl(mua, l + eps) on l in [mua - eps, mu1] is convex: golden
    section search on every arm at once.
    """
    raw_mua = mua
    mu1 = min(max(mu1, _EPS), 1 - _EPS)
    mua = np.clip(mua, _EPS, 1 - _EPS)
    lo = np.maximum(mua - epsilon, _EPS)
    hi = np.full_like(mua, min(mu1, 1 - epsilon - _EPS))
    lo = np.minimum(lo, hi)

    def kl(p: float | NDArray[np.float64], q: NDArray[np.float64]) -> NDArray[np.float64]:
        # p and q stay inside (0, 1) here: no clipping in the inner loop
        value: NDArray[np.float64] = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
        return value

    def cost(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return w1 * kl(mu1, x) + wa * kl(mua, np.minimum(x + epsilon, 1 - _EPS))

    ratio = (np.sqrt(5) - 1) / 2
    a, b = lo, hi
    for _ in range(32):  # the bracket shrinks to 0.618^32 ~ 2e-7 of its width
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        left = cost(c) < cost(d)
        b = np.where(left, d, b)
        a = np.where(left, a, c)
    best = (a + b) / 2
    value = np.where(raw_mua >= mu1 - epsilon, 0.0, cost(best))
    return value, best


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
    mu: NDArray[np.float64], epsilon: float, steps: int = 1500
) -> NDArray[np.float64]:
    """Weights for epsilon-good identification by exponentiated subgradient ascent on the simplex.

    The objective is the smallest pair cost; its subgradient (envelope theorem) at the worst
    pair is kl(mu_1, l*) for the best arm and kl(mu_a, l* + epsilon) for that arm.
    """
    best = int(np.argmax(mu))
    k = len(mu)
    others = np.array([a for a in range(k) if a != best])
    w = np.full(k, 1.0 / k)
    averaged = np.zeros(k)
    for step in range(1, steps + 1):
        costs, lam = _pair_costs(float(w[best]), w[others], float(mu[best]), mu[others], epsilon)
        worst = int(np.argmin(costs))
        gradient = np.zeros(k)
        gradient[best] = float(bernoulli_kl(mu[best], lam[worst]))
        gradient[others[worst]] = float(bernoulli_kl(mu[others[worst]], lam[worst] + epsilon))
        w = w * np.exp(0.5 / np.sqrt(step) * gradient / max(np.abs(gradient).max(), _EPS))
        w /= w.sum()
        averaged += w
    return averaged / steps


def characteristic_time(mu: NDArray[np.float64] | list[float], epsilon: float = 0.0) -> float:
    """T*(mu): the oracle needs about T* kl(delta, 1 - delta) samples."""
    mu = np.asarray(mu, dtype=np.float64)
    w = optimal_weights(mu, epsilon)
    best = int(np.argmax(mu))
    others = np.array([a for a in range(len(mu)) if a != best])
    value = float(
        _pair_costs(float(w[best]), w[others], float(mu[best]), mu[others], epsilon)[0].min()
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


def kl_inf_above(differences: NDArray[np.float64], epsilon: float) -> float:
    """K_inf: the smallest KL(P || Q) over distributions Q on [-1, 1] with mean at least
    `epsilon`, P the empirical distribution of `differences` (Honda & Takemura 2010's dual:
    the largest mean of log(1 - lambda (d - epsilon)) over lambda in [0, 1 / (1 - epsilon)])."""
    d = np.asarray(differences, dtype=np.float64)
    if d.mean() >= epsilon:
        return 0.0
    bets = np.linspace(0.0, 1.0 / (1.0 - epsilon), 801)[:, None] * (1.0 - 1e-9)
    return float(np.max(np.mean(np.log(1.0 - bets * (d[None, :] - epsilon)), axis=1)))


def paired_lower_bound_samples(table: NDArray[np.float64], delta: float, epsilon: float) -> float:
    """The oracle's cost when arms are compared on shared examples (the benchmark denominator
    beside `lower_bound_samples`): each arm b needs kl(delta, 1 - delta) / K_inf of the
    distribution of its per-example differences with the best arm (the alternative: b ahead by
    more than epsilon), the best arm as many as the most demanding b; finite-population
    adjusted and capped at the pool. `table` is K x n, rewards of every arm on every example."""
    table = np.asarray(table, dtype=np.float64)
    arms, n = table.shape
    best = int(np.argmax(table.mean(axis=1)))
    constant = float(bernoulli_kl(delta, 1 - delta))
    needed = []
    for arm in range(arms):
        if arm == best:
            continue
        information = kl_inf_above(table[arm] - table[best], epsilon)
        samples = constant / information if information > 0 else float("inf")
        needed.append(float(finite_population_draws(min(samples, 1e12), n)))
    return float(sum(needed) + max(needed, default=0.0))
