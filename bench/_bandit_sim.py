"""Replays a policy on a reward table with a given number of pulls in flight (bench helper).

A K x n table of rewards in [0, 1] stands for K candidates scored on n examples. The loop keeps
`in_flight` pulls outstanding and completes them in random order, as a dispatcher with that many
workers would; the policy never sees a reward before its pull completes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.search import BasePolicy, make_policy

#: policies of the benchmarks only, beside the engine's (`engine.search.POLICIES`)
BENCH_POLICIES: dict[str, type[BasePolicy]] = {}


def bench_policy(name: str, **settings: object) -> BasePolicy:
    """An engine policy by name, or one of `BENCH_POLICIES` (F-Race) with the same settings."""
    if name in BENCH_POLICIES:
        settings.setdefault("epsilon", None)
        return BENCH_POLICIES[name](**settings)  # type: ignore[arg-type]
    return make_policy(name, **settings)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Outcome:
    pulls: int
    pick: int | None
    regret: float
    correct: bool  # epsilon-good
    proven: bool | None = None  # the policy's certificate, when asked for
    supported: float | None = None


def synthetic_table(
    rng: np.random.Generator,
    arms: int,
    n: int,
    good_share: float = 0.1,
    difficulty: float = 0.8,
) -> np.ndarray:
    """Beta mixture of many mediocre and ~10 % good arms, with correlated example difficulty:
    each example's difficulty, a standard normal, shifts every arm's logit by `difficulty`
    times it (0.8 by default; 2.5 makes the examples, not the arms, most of a reward's spread)."""
    good = rng.random(arms) < good_share
    quality = np.where(good, rng.beta(16, 4, arms), rng.beta(4, 6, arms))
    hardness = rng.normal(0.0, 1.0, n)
    logit = np.log(quality / (1 - quality))[:, None] - difficulty * (
        hardness[None, :] - hardness.mean()
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    return (rng.random((arms, n)) < p).astype(np.float64)


def near_copies_table(rng: np.random.Generator, arms: int, n: int) -> np.ndarray:
    """Strongly correlated instances: an arm solves an example when its skill (a few good arms,
    many middling ones) beats the example's difficulty, plus a little noise; arms agree on most
    examples, as near copies of one instruction do (the pairs' differences vary far less than
    the rewards)."""
    good = rng.random(arms) < 0.1
    skill = np.where(good, rng.uniform(0.6, 0.8, arms), rng.uniform(0.2, 0.65, arms))
    hardness = rng.random(n)
    noise = rng.normal(0.0, 0.05, (arms, n))
    return (skill[:, None] + noise > hardness[None, :]).astype(np.float64)


def simulator_table(seed: int, arms: int, n: int, spread: float = 4.0) -> np.ndarray:
    """The simulator's rewards (engine.sim.world: latent qualities from its mixture, a shared
    difficulty per example of logistic spread `spread`, each answer's correctness hashed from the
    seed) for `arms` instructions on `n` examples of the built-in task larger_number: a third of
    them variants of the others (their parent's quality plus a little noise)."""
    from engine.sim import SimConfig
    from engine.sim.world import World
    from engine.task import load_task

    task = load_task("larger_number", seed=seed)
    world = World([task], SimConfig(tasks=(task,), seed=seed, difficulty_spread=spread))
    parents = [f"Instruction {i}: pick the larger of the two numbers." for i in range(arms)]
    texts = parents[: arms - arms // 3]
    for i in range(arms // 3):
        child = f"{texts[i]} Variant {i}."
        world.register_variant(child, texts[i])
        texts.append(child)
    table = np.zeros((arms, n))
    for a, text in enumerate(texts):
        key = world.key(text)
        for e in range(n):
            table[a, e] = world._unit("answer", key, 0, e, 0) < world._p(key, 0, e)
    return table


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
    certify: bool = False,
) -> Outcome:
    arms, n = table.shape
    policy = bench_policy(
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
    proven = supported = None
    if certify:
        certificate = policy.certificate()
        proven, supported = certificate.proven, certificate.supported
    return Outcome(policy.pulls_used, pick, regret, regret <= eps + 1e-12, proven, supported)


def _register() -> None:
    from frace import FRace

    from engine.search.paired import PairedLUCB

    class RawMeanPaired(PairedLUCB):
        """`paired` with the leader by raw mean, as before the adjusted estimate (the baseline
        of bench/budget_pick.py)."""

        name = "paired-raw"

        def estimates(self, fresh: bool = True) -> np.ndarray:
            return self.means()

    BENCH_POLICIES["frace"] = FRace
    BENCH_POLICIES["paired-raw"] = RawMeanPaired


_register()
