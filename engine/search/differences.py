"""Confidence bounds on the difference of two arms' pool means, from the examples both were
scored on (docs/design.md, "Scheduler").

Every arm walks the same seeded permutation of the pool, so the first `c` positions of the
permutation that two arms have both been scored on are a uniform sample without replacement of
`c` examples; as `c` grows, these samples are nested. On them the per-example difference
d = r_b - r_a (in [-1, 1]) has the pool mean D = mu_b - mu_a, and varies far less than either
reward when the examples' difficulty is shared. Only the contiguous shared prefix counts: results
that arrive out of order (many calls in flight, a cancelled call whose example waits for a retry)
join a pair's sample once every earlier position is in, so which examples a bound sees never
depends on how long a call took.

For each ordered pair (a, b) this keeps an upper confidence sequence for D_ab = mu_b - mu_a,
valid at every stopping time at level `delta_a` (the share of the arm that would be picked):

- betting (Waudby-Smith & Ramdas 2020, "Confidence sequences for sampling without replacement",
  NeurIPS; the capital of their Thm 3 against each value m of the mean of y = (d + 1) / 2):
  K_t(m) = prod_i (1 - lambda_i (y_i - mu_i(m))), where mu_i(m) = (N m - sum_{j<i} y_j) /
  (N - i + 1) is the mean of the examples not yet drawn if the pool mean were m. Under that m,
  K_t(m) is a nonnegative martingale, so by Ville's inequality it ever reaches 1 / delta' with
  probability at most delta': no union over sample sizes is needed. The bet lambda_i depends on
  the past draws only (not on m; aGRAPA, Waudby-Smith & Ramdas 2023, towards D = epsilon) and is
  capped by c / (1 - mu_i(m_0)) with m_0 the value of D = 0, so every factor stays positive for
  every m >= m_0 and K_t(m) grows with m: rejecting one m rejects every larger one, so the
  values of D >= 0 rejected at any time form one upper bound. Kept on a grid of D values that
  holds 0 and epsilon exactly (the elimination and the stopping thresholds).
- for 0/1 rewards, instead, the exact prior-posterior ratio over the pool's counts of
  discordant examples (Waudby-Smith & Ramdas 2020, section 2; `DiscordantPosterior`): each
  example is one where b is right and a wrong, the reverse, or one where they agree, so the
  pool is a composition (N+, N-, N0) and D = (N+ - N-) / N. With a uniform prior on the
  compositions, the ratio prior / posterior at the true one is a nonnegative martingale with
  mean 1; by Ville's inequality it ever reaches 1 / delta' with probability at most delta'.
  The compositions it has not reached bound D. Two arms that agree on most examples leave few
  compositions with a large D: the discordant examples carry all the information.
- each arm's own bounds (`engine.search.bounds`: exact ones for 0/1 rewards, betting ones
  otherwise): D <= upper_b - lower_a, which is what the pair needs when one arm is known far
  better than the other (a leader scored on the whole pool).
- hard bounds: whatever the rewards not yet seen are, D <= (sum_b + N - count_b - sum_a) / N,
  from every observation of either arm (no probability involved).

The upper bound is the smallest of these. An arm's delta is split: PAIR_SHARE to its pairs as
the candidate, the rest to its own mean's bounds (docs/design.md says why the union holds). An
arm is beaten when some pair proves it worse (its upper bound against another arm below 0).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.search.bounds import BettingBounds, PosteriorRatioBounds

__all__ = ["DiscordantPosterior", "PairedBounds", "difference_grid"]

FloatArray = NDArray[np.float64]
#: the bet's cap, as a share of the largest bet that keeps the capital positive
BET_CAP = 0.75
#: the share of an arm's delta spent on its pairs' bounds (the rest on its own mean's)
PAIR_SHARE = 0.5
#: rounding in sums of rewards never proves anything
_TOLERANCE = 1e-9


def difference_grid(epsilon: float) -> FloatArray:
    """Values of D >= 0 whose rejection the betting bound tracks: 0, multiples of epsilon near
    it (where stopping and certificates are decided), and steps of 0.05 up to 1."""
    near = epsilon * np.array([0.5, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32])
    grid = np.unique(np.concatenate([[0.0, epsilon], near, np.linspace(0.0, 1.0, 21)]))
    values: FloatArray = grid[grid <= 1.0]
    return values


class DiscordantPosterior:
    """The prior-posterior ratio bound on D = (N+ - N-) / n for two arms with 0/1 rewards.

    The prior on compositions (N+, N-, N0) of the pool is Dirichlet-multinomial(n; 1/2, 1/2, 1):
    it leans towards few discordant examples, as near copies of one instruction have. After t
    shared draws with w examples where b won, l where a won and t - w - l ties, the examples not
    drawn are Dirichlet-multinomial(n - t; 1/2 + w, 1/2 + l, 1 + t - w - l); a composition is
    rejected when prior / posterior reaches 1 / delta'. Computed on demand, cached by
    (w, l, t, level).
    """

    def __init__(self, n: int) -> None:
        self.n = n
        size = 2 * n + 4
        self._log_factorial = np.concatenate(
            [[0.0], np.cumsum(np.log(np.arange(1, size, dtype=np.float64)))]
        )  # log k! = lgamma(k + 1)
        self._log_gamma_half = np.array([math.lgamma(k + 0.5) for k in range(size)])
        self._cache: dict[tuple[int, int, int, float], float] = {}

    def upper(self, wins: int, losses: int, draws: int, log_threshold: float) -> float:
        key = (wins, losses, draws, log_threshold)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        f, h, n = self._log_factorial, self._log_gamma_half, self.n
        left, ties = n - draws, draws - wins - losses
        # the compositions of the examples not drawn: more wins w, more losses l, more ties t
        w, l_ = np.meshgrid(np.arange(left + 1), np.arange(left + 1), indexing="ij")
        inside = w + l_ <= left
        w, l_ = w[inside], l_[inside]
        t = left - w - l_
        log_posterior = (
            f[left] - f[w] - f[l_] - f[t] + f[draws + 1] - f[n + 1]
            + h[w + wins] - h[wins] + h[l_ + losses] - h[losses] + f[t + ties] - f[ties]
        )  # fmt: skip
        whole_w, whole_l, whole_t = w + wins, l_ + losses, t + ties
        log_prior = (
            f[n] - f[whole_w] - f[whole_l] - f[whole_t] - f[n + 1]
            + h[whole_w] - h[0] + h[whole_l] - h[0] + f[whole_t]
        )  # fmt: skip
        kept = log_prior - log_posterior < log_threshold
        lead = (wins - losses) + (w - l_)
        bound = float(lead[kept].max()) / n if kept.any() else 1.0
        if len(self._cache) > 200_000:
            self._cache.clear()
        self._cache[key] = bound
        return bound


class PairedBounds:
    """Upper bounds on mu_b - mu_a for every ordered pair (a, b) of arms over a pool of `n`
    examples walked in `order`; `binary`: every reward is 0 or 1."""

    def __init__(self, n: int, order: NDArray[np.int64], epsilon: float, binary: bool) -> None:
        self.n = n
        self.order = order
        self.rank = np.argsort(order)  # each example's place in `order`
        self.epsilon = epsilon
        self.binary = binary
        self.grid = difference_grid(epsilon)
        self._m = (self.grid + 1.0) / 2.0  # the grid as means of y = (d + 1) / 2
        self._target = (epsilon + 1.0) / 2.0
        self._discordant = DiscordantPosterior(n) if binary else None
        self._arm_ratio = PosteriorRatioBounds(n) if binary else None
        self._arm_betting = None if binary else BettingBounds(n)
        self._k = 0
        self._capacity = 0
        self.rewards: NDArray[Any] = np.zeros((0, n))
        self.seen: NDArray[Any] = np.zeros((0, n), dtype=bool)
        # each arm's run: the contiguous part of `order` it has been scored on
        self.prefix: NDArray[Any] = np.zeros(0, dtype=np.int64)
        self.total: NDArray[Any] = np.zeros(0)
        self.count: NDArray[Any] = np.zeros(0)
        # the rewards' sum over each arm's run, the bounds of each arm's own pool mean from its
        # run, and (0/1 rewards) the counts of ones its run has rejected
        self.run_total: NDArray[Any] = np.zeros(0)
        self.arm_lower: NDArray[Any] = np.zeros(0)
        self.arm_upper: NDArray[Any] = np.ones(0)
        self.arm_rejected: NDArray[Any] = np.zeros((0, n + 1), dtype=bool)
        # log(1 / delta') of each arm's pairs as the candidate, and of its own sequence
        self.threshold: NDArray[Any] = np.zeros(0)
        self.arm_threshold: NDArray[Any] = np.zeros(0)
        # each pair's shared draws processed, their sums, and its wins and losses (b against a)
        self.done: NDArray[Any] = np.zeros((0, 0), dtype=np.int64)
        self.sum_y: NDArray[Any] = np.zeros((0, 0))
        self.sum_y2: NDArray[Any] = np.zeros((0, 0))
        self.wins: NDArray[Any] = np.zeros((0, 0), dtype=np.int64)
        self.losses: NDArray[Any] = np.zeros((0, 0), dtype=np.int64)
        # the betting capital log K_t(m) on the grid and the values it rejected (any rewards)
        self.capital: NDArray[Any] = np.zeros((0, 0, len(self.grid)))
        self.rejected: NDArray[Any] = np.zeros((0, 0, len(self.grid)), dtype=bool)
        # each pair's bound from its shared draws, and the draws the exact bound last saw
        self.pair_upper: NDArray[Any] = np.ones((0, 0))
        self.evaluated: NDArray[Any] = np.zeros((0, 0), dtype=np.int64)
        self.beaten: NDArray[Any] = np.zeros(0, dtype=bool)
        self._dirty: set[int] = set()
        self._virtual: dict[int, tuple[tuple[float, float], tuple[float, float]]] = {}

    # ---- arms and observations -------------------------------------------------------------

    def _grow(self) -> None:
        size = max(16, 2 * self._capacity)
        rows = functools.partial(_grown, size=size, old=self._capacity, square=False)
        square = functools.partial(_grown, size=size, old=self._capacity, square=True)
        self.rewards, self.seen = rows(self.rewards), rows(self.seen, False)
        self.prefix, self.total, self.count = rows(self.prefix), rows(self.total), rows(self.count)
        self.run_total, self.beaten = rows(self.run_total), rows(self.beaten, False)
        self.arm_lower, self.arm_upper = rows(self.arm_lower, 0.0), rows(self.arm_upper, 1.0)
        self.arm_rejected = rows(self.arm_rejected, False)
        self.threshold, self.arm_threshold = rows(self.threshold), rows(self.arm_threshold)
        self.done, self.evaluated = square(self.done), square(self.evaluated)
        self.sum_y, self.sum_y2 = square(self.sum_y), square(self.sum_y2)
        self.wins, self.losses = square(self.wins), square(self.losses)
        self.pair_upper = square(self.pair_upper, 1.0)
        if not self.binary:
            self.capital, self.rejected = square(self.capital), square(self.rejected, False)
        self._capacity = size

    def add_arm(self, arm_delta: float) -> int:
        """A new arm with its share of delta; returns its number. PAIR_SHARE of the share goes
        to its pairs' bounds as the candidate, the rest to its own mean's bounds (both sides)."""
        if self._k == self._capacity:
            self._grow()
        arm = self._k
        self._k += 1
        self.threshold[arm] = np.log(1.0 / (arm_delta * PAIR_SHARE))
        own = arm_delta * (1.0 - PAIR_SHARE)
        self.arm_threshold[arm] = np.log(1.0 / own)
        if self._arm_betting is not None:
            self._arm_betting.add_arm(arm, own / 2.0)
        return arm

    @property
    def num_arms(self) -> int:
        return self._k

    def observe(self, arm: int, example: int, reward: float) -> None:
        """Record one reward; the arm's own bounds follow its run at once, the pairs catch up
        on the next `sync`."""
        self.rewards[arm, example] = reward
        self.seen[arm, example] = True
        self.total[arm] += reward
        self.count[arm] += 1
        position = int(self.prefix[arm])
        if self.rank[example] != position:
            return
        row, order = self.seen[arm], self.order
        while position < self.n and row[order[position]]:
            value = float(self.rewards[arm, order[position]])
            self.run_total[arm] += value
            if self._arm_betting is not None:
                self._arm_betting.step(arm, value)
            position += 1
        self.prefix[arm] = position
        self._dirty.add(arm)
        if self._arm_ratio is not None:
            ones = round(float(self.run_total[arm]))
            rejected = self.arm_rejected[arm] | self._arm_ratio.rejected(
                ones, position, float(self.arm_threshold[arm])
            )
            kept = np.flatnonzero(~rejected)
            if len(kept):  # (empty only where the sequence failed: then keep the last bounds)
                self.arm_rejected[arm] = rejected
                self.arm_lower[arm], self.arm_upper[arm] = kept[0] / self.n, kept[-1] / self.n
        elif self._arm_betting is not None:
            self.arm_lower[arm] = self._arm_betting.lower[arm]
            self.arm_upper[arm] = self._arm_betting.upper[arm]

    # ---- the pairs' confidence sequences ---------------------------------------------------

    def sync(self, skip: NDArray[np.bool_] | None = None) -> None:
        """Bring the pairs of every arm whose run grew up to date (`skip`: arms whose pairs are
        left as they are, such as dropped or beaten ones; they catch up if synced later)."""
        if not self._dirty:
            return
        k = self._k
        arms = np.array(sorted(self._dirty), dtype=np.int64)
        self._dirty.clear()
        others = np.arange(k) if skip is None else np.flatnonzero(~skip[:k])
        if skip is not None:
            arms = arms[~skip[arms]]
        if not len(arms) or not len(others):
            return
        rows = np.concatenate([np.repeat(arms, len(others)), np.tile(others, len(arms))])
        cols = np.concatenate([np.tile(others, len(arms)), np.repeat(arms, len(others))])
        keys = np.unique(rows[rows != cols] * k + cols[rows != cols])
        self._advance(keys // k, keys % k)

    def sync_all(self) -> None:
        """Every pair up to date (for a read-out after a run that never synced)."""
        k = self._k
        self._dirty.clear()
        rows, cols = np.divmod(np.arange(k * k), k)
        keep = rows != cols
        self._advance(rows[keep], cols[keep])

    def _advance(self, rows: NDArray[np.int64], cols: NDArray[np.int64]) -> None:
        target = np.minimum(self.prefix[rows], self.prefix[cols])
        moving = self.done[rows, cols] < target
        while moving.any():
            rows, cols, target = rows[moving], cols[moving], target[moving]
            self._step(rows, cols)
            moving = self.done[rows, cols] < target

    def _step(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> None:
        """One more shared draw for each pair (a[i], b[i])."""
        t = self.done[a, b]  # draws already processed
        example = self.order[t]
        d = self.rewards[b, example] - self.rewards[a, example]
        y = (d + 1.0) / 2.0
        if not self.binary:
            self._bet(a, b, t, y)
        self.sum_y[a, b] += y
        self.sum_y2[a, b] += y * y
        self.wins[a, b] += d > 0
        self.losses[a, b] += d < 0
        self.done[a, b] = t + 1

    def _bet(
        self, a: NDArray[np.int64], b: NDArray[np.int64], t: NDArray[np.int64], y: FloatArray
    ) -> None:
        """The betting capital of each pair on its next draw `y`, and its bound."""
        n = self.n
        s = self.sum_y[a, b]
        left = (n - t).astype(np.float64)  # examples not yet drawn, this one included
        bet = _bet_size(n, t, s, self.sum_y2[a, b], self._target)
        remaining = (n * self._m[None, :] - s[:, None]) / left[:, None]
        factor = 1.0 - bet[:, None] * (y[:, None] - remaining)
        capital = self.capital[a, b] + np.log(np.maximum(factor, 1e-300))
        self.capital[a, b] = capital
        # a value of D whose not-yet-drawn examples would need a mean above 1 is impossible
        after = (n * self._m[None, :] - (s + y)[:, None]) / np.maximum(left - 1.0, 1e-12)[:, None]
        impossible = (remaining > 1.0 + _TOLERANCE) | (
            (left[:, None] > 1.0) & (after > 1.0 + _TOLERANCE)
        )
        rejected = self.rejected[a, b] | (capital >= self.threshold[a][:, None]) | impossible
        self.rejected[a, b] = rejected
        # the smallest grid value rejected (every larger one is, as the capital grows with m)
        first = np.argmax(rejected, axis=1)
        bound = np.where(rejected.any(axis=1), self.grid[first], 1.0)
        self.pair_upper[a, b] = np.minimum(self.pair_upper[a, b], bound)
        beaten = bound <= 0.0
        if beaten.any():
            self.beaten[b[beaten]] = True

    def _exact_row(self, a: int) -> None:
        """The discordant bound of every pair (a, b) whose shared draws grew since it was last
        computed (0/1 rewards; computed when asked, as the study asks for the leader's row)."""
        assert self._discordant is not None
        k = self._k
        stale = np.flatnonzero(self.done[a, :k] != self.evaluated[a, :k])
        threshold = float(self.threshold[a])
        for b in stale:
            if b == a:
                continue
            draws = int(self.done[a, b])
            bound = self._discordant.upper(
                int(self.wins[a, b]), int(self.losses[a, b]), draws, threshold
            )
            self.pair_upper[a, b] = min(float(self.pair_upper[a, b]), bound)
            self.evaluated[a, b] = draws
            if bound < -_TOLERANCE:
                self.beaten[b] = True

    # ---- read-outs -------------------------------------------------------------------------

    def virtual_bounds(self, arm: int, extra: float) -> tuple[float, float]:
        """The arm's own bounds if its results past a gap in its run, and `extra` more at its
        mean, were in its run (to choose pulls only: never to stop or eliminate)."""
        count = float(self.count[arm])
        if count == 0:
            return 0.0, 1.0
        key = (count, extra)
        last = self._virtual.get(arm)
        if last is not None and last[0] == key:
            return last[1]
        result = self._virtual_bounds(arm, count, extra)
        self._virtual[arm] = (key, result)
        return result

    def _virtual_bounds(self, arm: int, count: float, extra: float) -> tuple[float, float]:
        mean = float(self.total[arm]) / count
        draws = min(count + extra, float(self.n))
        if self._arm_ratio is not None:
            ones = round(mean * draws)
            rejected = self.arm_rejected[arm] | self._arm_ratio.rejected(
                ones, int(draws), float(self.arm_threshold[arm])
            )
            kept = np.flatnonzero(~rejected)
            if len(kept):
                return kept[0] / self.n, kept[-1] / self.n
            return mean, mean
        run = max(float(self.prefix[arm]), 1.0)
        scale = np.sqrt(run / draws) * np.sqrt(max(self.n - draws, 0.0) / max(self.n - run, 1.0))
        low = mean - (mean - float(self.arm_lower[arm])) * scale
        high = mean + (float(self.arm_upper[arm]) - mean) * scale
        return max(low, 0.0), min(high, 1.0)

    def worse(self, among: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Arms proven worse than some arm of `among`: by a pair's bound, by their own bounds
        (upper below another's lower), or by the hard bounds."""
        k = self._k
        best_lower = float(np.max(np.where(among, self.arm_lower[:k], -np.inf), initial=-np.inf))
        best_floor = float(np.max(np.where(among, self.total[:k], -np.inf), initial=-np.inf))
        ceiling = self.total[:k] + (self.n - self.count[:k])
        worse: NDArray[np.bool_] = (
            self.beaten[:k]
            | (self.arm_upper[:k] < best_lower - _TOLERANCE)
            | (ceiling < best_floor - _TOLERANCE)
        )
        return worse

    def hard_upper(self, a: int) -> FloatArray:
        """D_ab <= (sum_b + n - count_b - sum_a) / n for every b, whatever is not yet seen."""
        k = self._k
        gap = (self.total[:k] - self.total[a]) + (self.n - self.count[:k])
        bound: FloatArray = gap / self.n + _TOLERANCE
        return bound

    def upper(self, a: int) -> FloatArray:
        """Upper bounds on mu_b - mu_a for every arm b (0 for b = a)."""
        k = self._k
        if self._discordant is not None:
            self._exact_row(a)
        bound: FloatArray = np.minimum(self.pair_upper[a, :k], self.hard_upper(a))
        bound = np.minimum(bound, self.arm_upper[:k] - self.arm_lower[a])
        bound[a] = 0.0
        return bound

    def shared(self, a: int) -> NDArray[np.int64]:
        """Shared draws each pair (a, b) has processed."""
        shared: NDArray[np.int64] = self.done[a, : self._k]
        return shared

    def difference(self, a: int) -> FloatArray:
        """The mean of d = r_b - r_a on each pair's shared draws (0 where none)."""
        k = self._k
        c = self.done[a, :k].astype(np.float64)
        mean: FloatArray = np.divide(2.0 * self.sum_y[a, :k] - c, c, out=np.zeros(k), where=c > 0)
        return mean

    def spread(self, a: int) -> FloatArray:
        """The variance of d on each pair's shared draws (1 where fewer than two)."""
        k = self._k
        c = self.done[a, :k].astype(np.float64)
        mean_y = np.divide(self.sum_y[a, :k], c, out=np.zeros(k), where=c > 0)
        second = np.divide(self.sum_y2[a, :k], c, out=np.zeros(k), where=c > 0)
        variance: FloatArray = np.where(c > 1, 4.0 * np.maximum(second - mean_y**2, 0.0), 1.0)
        return variance


def _grown(
    array: NDArray[Any], fill: object = 0, *, size: int, old: int, square: bool
) -> NDArray[Any]:
    """`array` grown to `size` rows (and columns, when `square`), its first `old` kept."""
    if square:
        grown = np.full((size, size, *array.shape[2:]), fill, dtype=array.dtype)
        grown[:old, :old] = array[:old, :old]
    else:
        grown = np.full((size, *array.shape[1:]), fill, dtype=array.dtype)
        grown[:old] = array[:old]
    return grown


def _bet_size(
    n: int, t: NDArray[np.int64], s: FloatArray, s2: FloatArray, target: float
) -> FloatArray:
    """Each pair's bet on its next draw, from the sum `s` and sum of squares `s2` of its `t`
    draws so far: the gap between the mean the not-yet-drawn examples need for the target and
    the running mean, over the running variance, capped so the capital stays positive."""
    left = (n - t).astype(np.float64)  # examples not yet drawn, this one included
    # the running mean and variance of y, each with one prior draw (a half, a quarter)
    mean = (0.5 + s) / (t + 1.0)
    variance = (0.25 + np.maximum(s2 - s * s / np.maximum(t, 1), 0.0)) / (t + 1.0)
    remaining_target = (n * target - s) / left
    remaining_zero = (n * 0.5 - s) / left
    gap = remaining_target - mean
    bet = np.clip(gap / (variance + gap**2), 0.0, None)
    cap = BET_CAP / np.maximum(1.0 - remaining_zero, 1e-12)
    sized: FloatArray = np.where(remaining_zero >= 1.0, 0.0, np.minimum(bet, cap))
    return sized
