"""`make_policy`: one entry for every scheduling policy by name."""

from __future__ import annotations

from typing import Any

from engine.errors import ConfigError
from engine.search.baselines import APEFilter, BatchedUCB, FullEvaluation, Uniform
from engine.search.halving import SuccessiveHalving
from engine.search.lucb import LUCB
from engine.search.paired import PairedLUCB
from engine.search.policy import BasePolicy
from engine.search.ttts import TopTwoThompson

__all__ = ["POLICIES", "make_policy"]

POLICIES: dict[str, type[BasePolicy]] = {
    "lucb": LUCB,
    "paired": PairedLUCB,  # the default (engine.study.config)
    "ttts": TopTwoThompson,
    "halving": SuccessiveHalving,
    "ape-filter": APEFilter,
    "ucb": BatchedUCB,
    "uniform": Uniform,
    "full": FullEvaluation,
}


def make_policy(
    name: str,
    *,
    n: int,
    seed: int,
    delta: float = 0.05,
    epsilon: float | None = None,
    scoring_calls: int | None = None,
    max_pending_per_arm: int = 32,
    initial_arms: int = 0,
    rewards: str = "continuous",
    **knobs: Any,
) -> BasePolicy:
    """A policy over a scoring pool of `n` examples.

    `epsilon` defaults to max(2/n, 0.005); `scoring_calls` caps the pulls (None: until the stopping rule);
    `initial_arms` says how many arms arrive at the start (they share delta/2; later arms get
    delta/(2 k (k+1)); with none, every arm streams); `rewards="binary"` (every reward 0 or 1, as
    with exact match) switches to the exact hypergeometric bounds, much tighter than the
    Serfling bounds that hold for any rewards in [0, 1] (`"continuous"`, the default); knobs are policy specific (halving: eta, first_rung; ape-filter: block,
    finalists; ucb: c, block).
    """
    policy = POLICIES.get(name)
    if policy is None:
        raise ConfigError(f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}")
    try:
        return policy(
            n=n,
            seed=seed,
            delta=delta,
            epsilon=epsilon,
            scoring_calls=scoring_calls,
            max_pending_per_arm=max_pending_per_arm,
            initial_arms=initial_arms,
            rewards=rewards,
            **knobs,
        )
    except TypeError as error:
        raise ConfigError(f"policy {name!r}: {error}") from None
