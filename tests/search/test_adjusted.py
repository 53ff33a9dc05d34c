"""The adjusted, shrunk means the `paired` policy picks by (engine.search.adjusted)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.search import make_policy
from engine.search.adjusted import AdjustedMeans
from engine.study.variants import leaders


def fed(rewards: np.ndarray, seen: np.ndarray) -> AdjustedMeans:
    estimates = AdjustedMeans(rewards.shape[1])
    for arm, example in zip(*np.nonzero(seen), strict=True):
        estimates.observe(int(arm), int(example), float(rewards[arm, example]))
    return estimates


def two_way_least_squares(rewards: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """theta of reward = theta_a + beta_e on the cells seen, solved directly (beta centred)."""
    arms, n = rewards.shape
    cells = np.argwhere(seen)
    design = np.zeros((len(cells) + 1, arms + n))
    target = np.zeros(len(cells) + 1)
    for row, (a, e) in enumerate(cells):
        design[row, a] = design[row, arms + e] = 1.0
        target[row] = rewards[a, e]
    design[-1, arms:] = seen.any(axis=0)  # sum of beta over the examples seen is 0
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    return solution[:arms]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), arms=st.integers(2, 7), n=st.integers(3, 25))
def test_the_fit_is_the_two_way_least_squares_and_shrinks_towards_the_average(
    seed: int, arms: int, n: int
) -> None:
    """On nested runs along one order (as the policy walks), the backfitting's arm effects are
    the least-squares ones, and shrinking keeps each between its effect and the average."""
    rng = np.random.default_rng(seed)
    rewards = rng.random((arms, n))
    walked = rng.integers(1, n + 1, arms)
    seen = np.arange(n)[None, :] < walked[:, None]
    theta = two_way_least_squares(rewards, seen)
    estimates = AdjustedMeans(n)
    with np.errstate(all="ignore"):
        for arm, example in zip(*np.nonzero(seen), strict=True):
            estimates.observe(int(arm), int(example), float(rewards[arm, example]))
        value = estimates.estimate(arms)
    fitted = estimates._theta[:arms]
    assert np.allclose(fitted, theta, atol=1e-5)
    centre = theta.mean()
    low, high = np.minimum(theta, centre), np.maximum(theta, centre)
    assert ((value >= low - 1e-5) & (value <= high + 1e-5)).all()


def test_complete_runs_keep_the_order_of_the_raw_means() -> None:
    """Every arm scored on every example: no adjustment, and equal shrinking keeps the order."""
    rng = np.random.default_rng(3)
    rewards = (rng.random((6, 30)) < rng.uniform(0.2, 0.8, (6, 1))).astype(float)
    value = fed(rewards, np.ones_like(rewards, dtype=bool)).estimate(6)
    assert list(np.argsort(value)) == list(np.argsort(rewards.mean(axis=1), kind="stable"))


def test_a_late_arm_is_judged_on_the_examples_it_shares() -> None:
    """The late arm's raw mean (3 of 4, on the four easiest examples) beats the leader's (24 of
    40), but on those four the leader had every one right: the estimate ranks it below."""
    n = 40
    leader = np.r_[np.ones(4), (np.arange(n - 4) % 3 != 0).astype(float)]  # 4 + 24 of 36 right
    other = np.r_[np.ones(4), (np.arange(n - 4) % 2 == 0).astype(float)]
    late = np.r_[1.0, 1.0, 1.0, 0.0, np.zeros(n - 4)]
    rewards = np.vstack([leader, other, late])
    seen = np.ones((3, n), dtype=bool)
    seen[2, 4:] = False
    assert late[:4].mean() > leader.mean()
    value = fed(rewards, seen).estimate(3)
    assert value[2] < value[0]


def test_the_paired_pick_at_a_budget_stop_is_not_the_lucky_late_arm() -> None:
    """The same story through the policy: the budget ends with the late arm's raw mean on top,
    and the pick, and the leader a variant round takes as a parent, is the arm that was better
    on the examples both were scored on."""
    n = 40
    policy = make_policy("paired", n=n, seed=0, delta=0.05, rewards="binary", initial_arms=2)
    for _ in range(2):
        policy.add_arm()
    position = {int(example): place for place, example in enumerate(policy.order)}
    first = [e for e in range(n) if position[e] < 4]

    def reward(arm: int, example: int) -> float:
        if example in first:
            return 0.0 if arm == 2 and position[example] == 3 else 1.0
        place = position[example]
        return float(place % 3 != 0) if arm == 0 else float(place % 2 == 0)

    for arm in (0, 1):
        for example in range(n):
            policy.record(arm, example, reward(arm, example))
    late = policy.add_arm()
    for example in first:
        policy.record(late, example, reward(late, example))
    means = policy.means()
    assert means[late] > means[0]
    assert policy.recommendation() == 0
    # and the leader that gets variants is the same one
    assert policy.stats(late).estimate < policy.stats(0).estimate
    arms = [SimpleNamespace(index=arm) for arm in range(3)]
    state = SimpleNamespace(arms=arms, dropped=set(), policy=policy)
    assert leaders(state, 1) == [0]  # type: ignore[arg-type]
