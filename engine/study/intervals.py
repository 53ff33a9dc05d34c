"""95 % confidence intervals for a mean score on a held-out pool.

Binary rewards (execution accuracy): the Wilson score interval (Wilson 1927; Brown, Cai &
DasGupta 2001 recommend it over the normal interval for small n). Continuous rewards
(log-probability): Student's t interval, with the t quantile from the Cornish-Fisher expansion
(Abramowitz & Stegun 26.7.5), within 3e-4 for df >= 5; a small table covers df < 5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mean_interval", "student_t_quantile", "t_interval", "wilson_interval"]

_Z975 = 1.959963984540054
_T975_SMALL = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105}


def wilson_interval(successes: float, n: int, z: float = _Z975) -> tuple[float, float]:
    """Wilson score interval for `successes` out of `n` (an interval of [0, 1] when n == 0)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes <= 0 else max(0.0, min(p, centre - half))
    high = 1.0 if successes >= n else min(1.0, max(p, centre + half))
    return (low, high)


def student_t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    if df in _T975_SMALL:
        return _T975_SMALL[df]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """Student's t interval of the mean, clipped to [0, 1] (rewards live there)."""
    n = len(values)
    if n == 0:
        return (0.0, 1.0)
    mean = math.fsum(values) / n
    if n == 1:
        return (0.0, 1.0)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = student_t_quantile(n - 1) * math.sqrt(variance / n)
    return (max(0.0, mean - half), min(1.0, mean + half))


def mean_interval(values: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """Mean and 95 % interval: Wilson when every value is 0 or 1, else Student's t."""
    n = len(values)
    if n == 0:
        return 0.0, (0.0, 1.0)
    mean = math.fsum(values) / n
    if all(v in (0.0, 1.0) for v in values):
        return mean, wilson_interval(math.fsum(values), n)
    return mean, t_interval(values)
