"""Parents from the per-example Pareto front (GEPA, Agrawal et al. 2025, section 3.2).

A variant round that only ever varies the leaders by mean collapses onto one lineage. GEPA
keeps every candidate that is best on at least one example: per example, the candidates with
the highest reward there are its front; a candidate on the front of some examples is dropped
when, on each of them, another candidate still kept is on the front too (dominated; candidates
are tried from the lowest mean up, so of two with the same wins the better mean stays). A parent
is then sampled with a probability proportional to the number of examples it wins.

The study scores candidates on a growing part of the pool (a bandit spends unevenly), so here
an example counts only when at least two candidates were scored on it and the best reward there
is above 0 (an example no one gets right tells nothing apart). A candidate scored on more
examples has more chances to win, so the front leans towards the candidates the scheduler
pulls most, the leaders among them.

`merge_pair` picks two candidates of the front that win on different examples -- each right on
some examples where the other is wrong -- for a merge. Everything here is pure: numpy arrays
in, indices out, the randomness from the `random.Random` given.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["RIGHT_FROM", "MergePair", "front_wins", "merge_pair", "sample_parents"]

#: A reward at or above it is a right answer, below it a wrong one (0/1 rewards: 1 and 0).
RIGHT_FROM = 0.5
_TIE = 1e-6


def _fronts(rewards: NDArray[Any], eligible: NDArray[Any]) -> NDArray[Any]:
    """candidates x examples: True where the candidate is on the example's front."""
    scored = ~np.isnan(rewards) & eligible[:, None]
    filled = np.where(scored, rewards, -np.inf)
    best = filled.max(axis=0, initial=-np.inf)
    counted = (scored.sum(axis=0) >= 2) & (best > 0)
    front: NDArray[Any] = scored & counted[None, :] & (filled >= best[None, :] - _TIE)
    return front


def front_wins(
    rewards: NDArray[Any], means: Sequence[float], eligible: Iterable[bool] | None = None
) -> dict[int, int]:
    """Candidate -> the examples it wins, for the candidates on the Pareto front once the
    dominated ones are dropped. `rewards` is candidates x examples (NaN: not scored), `means`
    each candidate's mean (the order dominated candidates are tried in), `eligible` the
    candidates that may take part (default: all)."""
    arms = rewards.shape[0]
    if arms == 0 or rewards.shape[1] == 0:
        return {}
    allowed = np.ones(arms, dtype=bool) if eligible is None else np.fromiter(eligible, bool, arms)
    front = _fronts(rewards, allowed)
    kept: NDArray[Any] = np.asarray(front.any(axis=1), dtype=bool)
    order = sorted(range(arms), key=lambda arm: (means[arm], -arm))
    for arm in order:
        if not kept[arm]:
            continue
        kept[arm] = False
        won = front[arm]
        if not (front[kept][:, won].any(axis=0)).all():
            kept[arm] = True  # the only one kept on some example: not dominated
    wins = front[kept].sum(axis=1)
    return {int(arm): int(count) for arm, count in zip(np.flatnonzero(kept), wins, strict=True)}


def sample_parents(
    wins: dict[int, int], count: int, rng: random.Random, exclude: Iterable[int] = ()
) -> list[int]:
    """Up to `count` distinct candidates of the front, each draw in proportion to its wins
    among those not drawn yet (and not in `exclude`)."""
    pool = {arm: weight for arm, weight in wins.items() if weight > 0}
    for arm in exclude:
        pool.pop(arm, None)
    chosen: list[int] = []
    while pool and len(chosen) < count:
        arms = sorted(pool)
        arm = rng.choices(arms, weights=[pool[a] for a in arms], k=1)[0]
        chosen.append(arm)
        del pool[arm]
    return chosen


@dataclass(frozen=True, slots=True)
class MergePair:
    """Two candidates to merge, and the examples only the first (`first_only`) and only the
    second (`second_only`) gets right, among those both were scored on."""

    first: int
    second: int
    first_only: tuple[int, ...]
    second_only: tuple[int, ...]


def _only(rewards: NDArray[Any], a: int, b: int) -> tuple[NDArray[Any], NDArray[Any]]:
    both = ~np.isnan(rewards[a]) & ~np.isnan(rewards[b])
    right_a = both & (np.nan_to_num(rewards[a]) >= RIGHT_FROM)
    right_b = both & (np.nan_to_num(rewards[b]) >= RIGHT_FROM)
    return np.flatnonzero(right_a & ~right_b), np.flatnonzero(right_b & ~right_a)


def merge_pair(rewards: NDArray[Any], wins: dict[int, int], rng: random.Random) -> MergePair | None:
    """Two candidates of the front, each right on some example the other gets wrong: the first
    drawn in proportion to its wins, the second in proportion to the examples only it gets
    right; None when no two such candidates are on the front."""
    firsts = sample_parents(wins, len(wins), rng)
    for first in firsts:
        options: dict[int, tuple[NDArray[Any], NDArray[Any]]] = {}
        for second in sorted(wins):
            if second == first:
                continue
            first_only, second_only = _only(rewards, first, second)
            if len(first_only) and len(second_only):
                options[second] = (first_only, second_only)
        if not options:
            continue
        seconds = sorted(options)
        second = rng.choices(seconds, weights=[len(options[s][1]) for s in seconds], k=1)[0]
        first_only, second_only = options[second]
        return MergePair(
            first, second, tuple(int(e) for e in first_only), tuple(int(e) for e in second_only)
        )
    return None
