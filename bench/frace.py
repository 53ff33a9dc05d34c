"""F-Race (Birattari, Stuetzle, Paquete & Varrentrapp 2002, "A racing algorithm for configuring
metaheuristics"; as irace runs it, Lopez-Ibanez et al. 2016, R/race.R) as a scheduling policy,
for the benchmarks only: the strongest established paired method, beside the paper's filter.

Every candidate still in the race is scored on the same examples, one example (a block) at a
time, in the shared order. From the `first_test`-th example on (irace's firstTest, 5), after
every block: with more than two candidates left, the Friedman test on the ranks within each
block (rewards ranked, ties averaged, with the tie correction); if its p-value is below
1 - confidence (irace's 0.95), Conover's post-hoc comparison drops every candidate whose rank
sum is further from the best one's than t_{1-alpha/2, (b-1)(k-1)} sqrt(2 (b A - sum R^2) /
((b-1)(k-1))), A the sum of squared ranks. With two left, the Wilcoxon signed-rank test on their
differences, and, as irace does, no test at all when every difference favours one of them (the
other is dropped). The race ends with one candidate left, or when the examples run out: then the
best rank sum wins. There is no tolerance and no guarantee: each test is at 1 - confidence,
repeated after every block.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from engine.search.policy import BasePolicy, Pull

__all__ = ["FRace"]


class FRace(BasePolicy):
    name = "frace"

    def __init__(self, *, first_test: int = 5, confidence: float = 0.95, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.first_test = first_test
        self.alpha = 1.0 - confidence
        self.blocks = 0  # examples of the shared order every candidate left has been scored on
        self._stats = _RankStatistics()

    # ---- the race ----------------------------------------------------------------------

    def _alive(self) -> np.ndarray:
        alive: np.ndarray = self.live()
        return alive

    def _table(self, alive: np.ndarray) -> np.ndarray:
        """Rewards of the candidates left (columns) on the blocks run so far (rows)."""
        examples = self.order[: self.blocks]
        table: np.ndarray = self.pairs.rewards[np.flatnonzero(alive)][:, examples].T
        return table

    def _advance(self) -> None:
        """Close every block the candidates left have all been scored on, testing after each."""
        k = self.num_arms
        while self.blocks < self.n:
            alive = self._alive()
            example = self.order[self.blocks]
            if alive.sum() <= 1 or not self.pairs.seen[:k][alive, example].all():
                return
            self.blocks += 1
            self._stats.add(self.pairs.rewards[np.flatnonzero(alive), example], alive)
            if self.blocks >= self.first_test:
                self._test(alive)

    def _test(self, alive: np.ndarray) -> None:
        arms = np.flatnonzero(alive)
        if len(arms) > 2:
            keep = self._stats.survivors(self._table(alive), alive, self.alpha)
        else:
            table = self._table(alive)
            keep = wilcoxon_survivors(table[:, 0], table[:, 1], self.alpha)
        self.eliminated[arms[~keep]] = True

    def rank_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """The candidates left and their rank sums over the blocks run (lower is better)."""
        alive = self._alive()
        table = self._table(alive)
        ranks = stats.rankdata(-table, axis=1) if len(table) else np.zeros((0, int(alive.sum())))
        return np.flatnonzero(alive), ranks.sum(axis=0)

    # ---- the policy --------------------------------------------------------------------

    def _after_observe(self, arm: int) -> None:
        self._advance()

    def _select(self, k: int) -> list[Pull]:
        self._advance()
        if self.blocks >= self.n or self._alive().sum() <= 1:
            return []
        example = int(self.order[self.blocks])
        pulls: list[Pull] = []
        for arm in np.flatnonzero(self._alive()):
            if len(pulls) >= k:
                break
            if not self.taken[arm, example] and self.can_pull(int(arm)):
                pull = self._take(int(arm))
                if pull is not None:
                    pulls.append(pull)
        return pulls

    def _anything_left(self) -> bool:
        self._advance()
        return bool(
            self.pending[: self.num_arms].sum() > 0
            or (self.blocks < self.n and self._alive().sum() > 1)
        )

    def recommendation(self) -> int | None:
        if self.num_arms == 0 or self.count[: self.num_arms].sum() == 0:
            return None
        arms, sums = self.rank_sums()
        if len(arms) == 1 or self.blocks == 0:
            return int(arms[0]) if len(arms) == 1 else int(np.argmax(self.means()))
        return int(arms[np.argmin(sums)])


class _RankStatistics:
    """The Friedman statistics of the candidates left, kept block by block (the ranks of a
    block among the same candidates never change; a new set of candidates starts anew)."""

    def __init__(self) -> None:
        self.alive: np.ndarray | None = None
        self.blocks = 0
        self.sums = np.zeros(0)
        self.squares = 0.0
        self.ties = 0.0

    def _reset(self, table: np.ndarray, alive: np.ndarray) -> None:
        self.alive, self.blocks = alive.copy(), 0
        self.sums, self.squares, self.ties = np.zeros(int(alive.sum())), 0.0, 0.0
        for row in table:
            self._row(row)

    def _row(self, row: np.ndarray) -> None:
        ranks = stats.rankdata(-row)  # 1 = best reward in the block, ties averaged
        _, counts = np.unique(row, return_counts=True)
        self.blocks += 1
        self.sums += ranks
        self.squares += float(np.sum(ranks**2))
        self.ties += float(np.sum(counts**3 - counts))

    def add(self, row: np.ndarray, alive: np.ndarray) -> None:
        if self.alive is not None and np.array_equal(alive, self.alive):
            self._row(row)
        else:
            self.alive = None  # rebuilt at the next test from the whole table

    def survivors(self, table: np.ndarray, alive: np.ndarray, alpha: float) -> np.ndarray:
        if self.alive is None or not np.array_equal(alive, self.alive):
            self._reset(table, alive)
        return friedman_survivors(self.blocks, self.sums, self.squares, self.ties, alpha)


def friedman_survivors(
    blocks: int, sums: np.ndarray, squares: float, ties: float, alpha: float
) -> np.ndarray:
    """irace's `aux2_friedman` from the rank sums `sums` of k candidates over `blocks` blocks,
    the sum of squared ranks and the ties' sum of t^3 - t: which candidates survive."""
    k = len(sums)
    denominator = blocks * k * (k + 1) - ties / (k - 1)
    keep = np.ones(k, dtype=bool)
    if denominator <= 0:
        return keep  # every block a full tie: nothing to tell apart
    statistic = 12.0 * np.sum((sums - blocks * (k + 1) / 2.0) ** 2) / denominator
    if not stats.chi2.sf(statistic, k - 1) < alpha:
        return keep
    spread = 2.0 * (blocks * squares - np.sum(sums**2)) / ((blocks - 1) * (k - 1))
    critical = stats.t.ppf(1.0 - alpha / 2.0, (blocks - 1) * (k - 1)) * np.sqrt(max(spread, 0.0))
    order = np.argsort(sums, kind="stable")
    best = sums[order[0]]
    keep[:] = False
    keep[order[0]] = True
    for column in order[1:]:
        if abs(sums[column] - best) > critical:
            break  # as irace: the first one too far ends the list of survivors
        keep[column] = True
    return keep


def wilcoxon_survivors(first: np.ndarray, second: np.ndarray, alpha: float) -> np.ndarray:
    """irace's two-candidate case: drop the worse one when every difference favours the other,
    else when the Wilcoxon signed-rank test rejects at `alpha` (its worse by pseudo-median)."""
    diffs = first - second
    if np.all(diffs >= 0):
        return np.array([True, False])
    if np.all(diffs <= 0):
        return np.array([False, True])
    nonzero = diffs[diffs != 0]
    # as R's wilcox.test in irace: exact without zeros or ties below 50 pairs, else the normal
    # approximation with the continuity correction
    ties = len(np.unique(np.abs(nonzero))) < len(nonzero)
    exact = len(nonzero) == len(diffs) and not ties and len(nonzero) < 50
    p_value = stats.wilcoxon(
        nonzero, correction=True, method="exact" if exact else "asymptotic"
    ).pvalue
    if not p_value < alpha:
        return np.array([True, True])
    walsh = (nonzero[:, None] + nonzero[None, :])[np.triu_indices(len(nonzero))] / 2.0
    first_better = np.median(walsh) >= 0
    return np.array([first_better, not first_better])
