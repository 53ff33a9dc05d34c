from __future__ import annotations

import numpy as np
import pytest

from engine.search.bounds import HypergeometricBounds, arm_delta, hard_bounds, radius
from engine.search.oracle import (
    characteristic_time,
    finite_population_draws,
    lower_bound_samples,
    optimal_weights,
)


@pytest.mark.parametrize(
    ("mu", "weights"),
    [
        ([0.5, 0.45, 0.43, 0.4], [0.417, 0.390, 0.136, 0.057]),
        ([0.3, 0.21, 0.2, 0.19, 0.18], [0.336, 0.251, 0.177, 0.132, 0.104]),
    ],
)
def test_oracle_reproduces_published_weights(mu: list[float], weights: list[float]) -> None:
    assert np.round(optimal_weights(mu), 3).tolist() == weights


def test_oracle_time_grows_as_gap_shrinks_and_epsilon_helps() -> None:
    assert characteristic_time([0.5, 0.3]) < characteristic_time([0.5, 0.45])
    assert characteristic_time([0.5, 0.45], epsilon=0.03) < characteristic_time([0.5, 0.45])
    assert finite_population_draws(1e9, 200) == pytest.approx(200, abs=1e-3)
    assert finite_population_draws(1.0, 200) == pytest.approx(1.0)
    assert 0 < lower_bound_samples([0.8, 0.5, 0.4], 0.05, 200) <= 600


def test_hard_bounds_collapse_when_pool_is_exhausted() -> None:
    low, high = hard_bounds(np.array([120.0]), np.array([200.0]), 200)
    assert low[0] == high[0] == 0.6
    width = radius(np.array([200.0]), np.array([0.2]), n=200, arm_deltas=np.array([0.01]))
    assert width[0] == 0.0


def test_streaming_deltas_sum_below_delta() -> None:
    deltas = arm_delta(np.arange(10_000), delta=0.05, initial_arms=50)
    assert deltas.sum() <= 0.05
    assert deltas[0] == pytest.approx(0.05 / 2 / 50)


def test_bounds_cover_the_pool_mean_uniformly_over_sample_sizes() -> None:
    """Coverage by simulation: a path of draws whose bound ever misses counts as a failure."""
    rng = np.random.default_rng(0)
    n, delta, failures, paths = 200, 0.05, 0, 400
    for path in range(paths):
        p = rng.uniform(0.05, 0.95)
        pool = (rng.random(n) < p).astype(float) if path % 2 else rng.beta(2, 3, n)
        draws = pool[rng.permutation(n)]
        m = np.arange(1, n + 1, dtype=float)
        sums = np.cumsum(draws)
        mean = sums / m
        variance = np.maximum(np.cumsum(draws**2) / m - mean**2, 0)
        width = radius(m, variance, n=n, arm_deltas=np.full(n, delta))
        low, high = hard_bounds(sums, m, n)
        lower = np.maximum(mean - width, low)
        upper = np.minimum(mean + width, high)
        truth = pool.mean()
        failures += bool(((lower > truth + 1e-12) | (upper < truth - 1e-12)).any())
    assert failures / paths <= delta


def test_hypergeometric_bounds_cover_the_pool_mean_uniformly_over_sample_sizes() -> None:
    """Exact bounds for 0/1 pools: a path whose bound misses at any sample size is a failure."""
    rng = np.random.default_rng(1)
    n, delta, failures, paths = 120, 0.2, 0, 300
    exact = HypergeometricBounds(n)
    level = exact.level(delta)
    for _ in range(paths):
        pool = (rng.random(n) < rng.uniform(0.05, 0.95)).astype(int)
        truth = pool.mean()
        sums = np.cumsum(pool[rng.permutation(n)])
        for m in range(1, n + 1):
            low, high = exact.bounds(int(sums[m - 1]), m, level)
            if not low <= truth <= high:
                failures += 1
                break
    assert failures / paths <= delta


def test_hypergeometric_bounds_are_tighter_than_serfling_and_exact_at_the_end() -> None:
    n, arm_delta_ = 200, 0.001
    exact = HypergeometricBounds(n)
    level = exact.level(arm_delta_)
    for m, ones in [(20, 18), (100, 90), (150, 60)]:
        low, high = exact.bounds(ones, m, level)
        serfling = radius(
            np.array([float(m)]), np.array([0.09]), n=n, arm_deltas=np.array([arm_delta_])
        )[0]
        hard_low, hard_high = hard_bounds(np.array([float(ones)]), np.array([float(m)]), n)
        assert hard_low[0] <= low <= ones / m <= high <= hard_high[0]
        assert high - low < min(hard_high[0], ones / m + serfling) - max(
            hard_low[0], ones / m - serfling
        )
    assert exact.bounds(37, n, level) == (37 / n, 37 / n)
    assert exact.bounds(0, 0, level) == (0.0, 1.0)
    # a smaller delta gives a wider bound
    wide = exact.bounds(90, 100, exact.level(1e-6))
    narrow = exact.bounds(90, 100, level)
    assert wide[0] <= narrow[0] and wide[1] >= narrow[1]


def test_arms_stream_from_the_first_when_none_is_announced() -> None:
    deltas = arm_delta(np.arange(100_000), delta=0.05, initial_arms=0)
    assert deltas.sum() <= 0.05
    assert deltas[0] == pytest.approx(0.05 / 2)
