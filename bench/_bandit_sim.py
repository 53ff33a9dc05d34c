"""Replays a policy on a reward table with a given number of pulls in flight (bench helper).

A K x n table of rewards in [0, 1] stands for K candidates scored on n examples. The loop keeps
`in_flight` pulls outstanding and completes them in random order, as a dispatcher with that many
workers would; the policy never sees a reward before its pull completes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.search import make_policy


@dataclass(frozen=True, slots=True)
class Outcome:
    pulls: int
    pick: int | None
    regret: float
    correct: bool  # epsilon-good


def synthetic_table(
    rng: np.random.Generator, arms: int, n: int, good_share: float = 0.1
) -> np.ndarray:
    """Beta mixture of many mediocre and ~10 % good arms, with correlated example difficulty."""
    good = rng.random(arms) < good_share
    quality = np.where(good, rng.beta(16, 4, arms), rng.beta(4, 6, arms))
    difficulty = rng.normal(0.0, 1.0, n)
    logit = np.log(quality / (1 - quality))[:, None] - 0.8 * (
        difficulty[None, :] - difficulty.mean()
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    return (rng.random((arms, n)) < p).astype(np.float64)


def run_policy(
    table: np.ndarray,
    policy_name: str,
    *,
    seed: int,
    in_flight: int,
    delta: float = 0.05,
    epsilon: float | None = None,
    scoring_calls: int | None = None,
    max_pulls: int | None = None,
    rewards: str = "binary",
) -> Outcome:
    arms, n = table.shape
    policy = make_policy(
        policy_name,
        n=n,
        seed=seed,
        delta=delta,
        epsilon=epsilon,
        scoring_calls=scoring_calls,
        initial_arms=arms,
        rewards=rewards,
    )
    for _ in range(arms):
        policy.add_arm()
    rng = np.random.default_rng(seed + 7919)
    outstanding: list = []
    limit = max_pulls or arms * n
    while True:
        if len(outstanding) < in_flight:
            outstanding.extend(policy.select(in_flight - len(outstanding)))
        if not outstanding:
            break
        pull = outstanding.pop(int(rng.integers(len(outstanding))))
        policy.observe(pull, float(table[pull.arm, pull.example]))
        if policy.pulls_used >= limit:
            break
    pick = policy.recommendation()
    true = table.mean(axis=1)
    eps = policy.epsilon
    regret = float(true.max() - true[pick]) if pick is not None else float("nan")
    return Outcome(policy.pulls_used, pick, regret, regret <= eps + 1e-12)
