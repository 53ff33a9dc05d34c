"""The paired bounds and the `paired` policy: validity at the stated rate, streaming arms and
cancelled pulls, many pulls in flight, determinism, certificates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.search import POLICIES, Pull, make_policy
from engine.search.bounds import BettingBounds, PosteriorRatioBounds
from engine.search.differences import DiscordantPosterior, PairedBounds


def pool(rng: np.random.Generator, kind: str, arms: int, n: int) -> np.ndarray:
    """Rewards of `arms` arms on `n` examples whose difficulty the arms share."""
    hardness = rng.normal(0.0, 1.0, n)
    if kind == "binary":
        quality = rng.uniform(-1.0, 2.0, arms)
        chance = 1.0 / (1.0 + np.exp(-(quality[:, None] - 2.0 * hardness[None, :])))
        return (rng.random((arms, n)) < chance).astype(float)
    if kind == "close":  # near copies of one candidate: differences far smaller than rewards
        base = rng.beta(2.0, 5.0, n)
        noise = rng.normal(0.0, 0.02, (arms, n)) + rng.normal(0.0, 0.01, (arms, 1))
        return np.clip(base[None, :] + noise, 0.0, 1.0)
    return rng.beta(rng.uniform(0.5, 3.0, (arms, 1)), rng.uniform(0.5, 3.0, (arms, 1)), (arms, n))


def misses(bounds: PairedBounds, means: np.ndarray) -> bool:
    """Whether any bound excludes the truth: a pair's, an arm's own, or a beaten best arm."""
    for a in range(len(means)):
        if (bounds.upper(a) < means - means[a] - 1e-9).any():
            return True
        if not bounds.arm_lower[a] - 1e-9 <= means[a] <= bounds.arm_upper[a] + 1e-9:
            return True
    return bool(bounds.beaten[int(np.argmax(means))])


@pytest.mark.parametrize("kind", ["binary", "close", "beta"])
def test_paired_bounds_hold_at_the_stated_rate_whatever_the_arrival_order(kind: str) -> None:
    """Over many seeded pools and permutations, with results arriving in any order, the share
    of runs where some bound ever excluded the truth stays below delta."""
    delta, runs, failed = 0.3, 120, 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        arms, n = int(rng.integers(2, 5)), int(rng.integers(5, 40))
        rewards = pool(rng, kind, arms, n)
        means = rewards.mean(axis=1)
        bounds = PairedBounds(n, rng.permutation(n), 0.02, binary=kind == "binary")
        for _ in range(arms):
            bounds.add_arm(delta / arms)
        events = [(a, e) for a in range(arms) for e in range(n)]
        rng.shuffle(events)
        miss = False
        for step, (arm, example) in enumerate(events):
            bounds.observe(arm, example, float(rewards[arm, example]))
            if step % 7 == 0 or step == len(events) - 1:
                bounds.sync()
                miss |= misses(bounds, means)
        failed += miss
        if not miss:  # every result in: the bounds are the exact differences
            final = [float(bounds.upper(a)[b]) for a in range(arms) for b in range(arms)]
            exact = [means[b] - means[a] for a in range(arms) for b in range(arms)]
            assert np.allclose(final, exact, atol=1e-6)
    assert failed <= delta * runs * 0.5


def test_each_sequence_holds_at_its_level() -> None:
    """The one-arm sequences (exact and betting) and the discordant one, each alone at 0.2."""
    rng = np.random.default_rng(5)
    n, delta, runs = 24, 0.2, 400
    ratio, discordant = PosteriorRatioBounds(n), DiscordantPosterior(n)
    failures = {"ratio": 0, "betting": 0, "discordant": 0}
    for _ in range(runs):
        ones = int(rng.integers(0, n + 1))
        draws = rng.permutation(np.arange(n) < ones).astype(float)
        rejected = np.zeros(n + 1, dtype=bool)
        betting = BettingBounds(n, points=97)
        betting.add_arm(0, delta / 2)
        wins, losses = rng.integers(0, n // 2, 2)
        d = rng.permutation(
            np.concatenate([np.ones(wins), -np.ones(losses), np.zeros(n - wins - losses)])
        )
        fail = {"ratio": False, "betting": False, "discordant": False}
        for t in range(1, n + 1):
            rejected |= ratio.rejected(int(draws[:t].sum()), t, np.log(1 / delta))
            fail["ratio"] |= bool(rejected[ones])
            betting.step(0, draws[t - 1])
            fail["betting"] |= not betting.lower[0] - 1e-9 <= ones / n <= betting.upper[0] + 1e-9
            upper = discordant.upper(
                int((d[:t] > 0).sum()), int((d[:t] < 0).sum()), t, np.log(1 / delta)
            )
            fail["discordant"] |= upper < (wins - losses) / n - 1e-9
        for name, value in fail.items():
            failures[name] += value
    assert all(count <= delta * runs for count in failures.values()), failures
    assert failures["ratio"] > 0  # not vacuous: the exact sequence does fail, below its rate


def correlated(seed: int, arms: int = 12, n: int = 120) -> np.ndarray:
    """0/1 rewards where an arm solves an example when its skill beats the example's difficulty
    (plus a little noise): arms agree on most examples, as near copies of an instruction do."""
    rng = np.random.default_rng(seed)
    skill = np.sort(rng.uniform(0.3, 0.7, arms))
    hardness = rng.random(n)
    return (skill[:, None] + rng.normal(0.0, 0.05, (arms, n)) > hardness[None, :]).astype(float)


def drive(policy, rewards: np.ndarray, in_flight: int, seed: int = 0, cancel: float = 0.0) -> None:
    rng = np.random.default_rng(seed)
    outstanding: list[Pull] = []
    while True:
        outstanding.extend(policy.select(in_flight - len(outstanding)))
        if not outstanding:
            return
        pull = outstanding.pop(int(rng.integers(len(outstanding))))
        if rng.random() < cancel:
            policy.cancel(pull)
        else:
            policy.observe(pull, float(rewards[pull.arm, pull.example]))


def test_paired_stops_with_the_best_and_costs_less_than_lucb_when_arms_agree() -> None:
    costs = {}
    for name in ("paired", "lucb"):
        spent = []
        for seed in range(3):
            rewards = correlated(seed)
            policy = make_policy(name, n=rewards.shape[1], seed=seed, rewards="binary",
                                 initial_arms=rewards.shape[0])  # fmt: skip
            for _ in range(rewards.shape[0]):
                policy.add_arm()
            drive(policy, rewards, in_flight=32, seed=seed)
            assert policy.done()
            means = rewards.mean(axis=1)
            pick = policy.recommendation()
            assert pick is not None and means.max() - means[pick] <= policy.epsilon
            spent.append(policy.pulls_used)
        costs[name] = sum(spent)
    assert costs["paired"] < costs["lucb"]


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), in_flight=st.sampled_from([1, 8, 64]), cancel=st.floats(0, 0.3))
def test_streaming_arms_and_cancels_keep_the_pick_good(
    seed: int, in_flight: int, cancel: float
) -> None:
    """Arms that arrive while scoring runs get a smaller share of delta; pulls cancelled give
    their example back. The pick is epsilon-good (delta 0.05: a miss here would be a bug)."""
    rewards = correlated(seed, arms=8, n=40)
    policy = make_policy("paired", n=40, seed=seed, rewards="binary")
    for _ in range(4):
        policy.add_arm()
    drive(policy, rewards[:4], in_flight=in_flight, seed=seed, cancel=cancel)
    for _ in range(4):
        policy.add_arm()
    drive(policy, rewards, in_flight=in_flight, seed=seed + 1, cancel=cancel)
    assert policy.done()
    means = rewards.mean(axis=1)
    pick = policy.recommendation()
    assert pick is not None and means.max() - means[pick] <= policy.epsilon + 1e-12
    certificate = policy.certificate()
    assert certificate.proven and certificate.arm == pick
    assert certificate.supported <= policy.epsilon and certificate.more_calls == 0


def test_256_in_flight_spread_over_the_arms_and_respect_the_cap() -> None:
    arms, n = 40, 100
    rng = np.random.default_rng(3)
    quality = rng.uniform(0.2, 0.8, arms)
    rewards = (rng.random((arms, n)) < quality[:, None]).astype(float)
    policy = make_policy("paired", n=n, seed=0, rewards="binary", initial_arms=arms)
    for _ in range(arms):
        policy.add_arm()
    outstanding: list[Pull] = policy.select(256)
    first = np.bincount([p.arm for p in outstanding], minlength=arms)
    assert first.sum() == 256 and first.max() <= 10  # a first batch spreads
    while True:
        outstanding.extend(policy.select(256 - len(outstanding)))
        if not outstanding:
            break
        assert policy.pending[:arms].max() <= policy.max_pending
        pull = outstanding.pop(int(rng.integers(len(outstanding))))
        policy.observe(pull, float(rewards[pull.arm, pull.example]))
    assert policy.done() and policy.pulls_used < 0.6 * rewards.size


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), in_flight=st.sampled_from([1, 16, 256]))
def test_the_same_seed_gives_the_same_study(seed: int, in_flight: int) -> None:
    rewards = correlated(seed, arms=6, n=40)
    runs = []
    for _ in range(2):
        policy = make_policy("paired", n=40, seed=seed, rewards="binary")
        for _ in range(6):
            policy.add_arm()
        pulls: list[tuple[int, int]] = []
        outstanding: list[Pull] = []
        rng = np.random.default_rng(seed)
        while True:
            fresh = policy.select(in_flight - len(outstanding))
            pulls += [(p.arm, p.example) for p in fresh]
            outstanding.extend(fresh)
            if not outstanding:
                break
            pull = outstanding.pop(int(rng.integers(len(outstanding))))
            policy.observe(pull, float(rewards[pull.arm, pull.example]))
        runs.append((pulls, policy.recommendation(), policy.certificate()))
    assert runs[0] == runs[1]


def test_a_budget_that_stops_first_says_what_is_proven() -> None:
    rewards = correlated(4, arms=10, n=100)
    for name in POLICIES:
        policy = make_policy(name, n=100, seed=1, rewards="binary", scoring_calls=150)
        for _ in range(10):
            policy.add_arm()
        drive(policy, rewards, in_flight=8)
        certificate = policy.certificate()
        assert certificate.arm == policy.recommendation()
        assert not certificate.proven, name
        assert policy.epsilon < certificate.supported <= 1.0
        assert certificate.more_calls > 0
    empty = make_policy("paired", n=10, seed=0)
    assert empty.certificate().arm is None and not empty.certificate().proven


def test_replayed_observations_give_the_same_bounds() -> None:
    rewards = correlated(2, arms=5, n=50)
    live = make_policy("paired", n=50, seed=9, rewards="binary")
    for _ in range(5):
        live.add_arm()
    drive(live, rewards, in_flight=16, seed=2)
    replay = make_policy("paired", n=50, seed=9, rewards="binary")
    for _ in range(5):
        replay.add_arm()
    for arm in range(5):
        for example in np.flatnonzero(live.pairs.seen[arm]):
            replay.record(arm, int(example), float(rewards[arm, example]))
    assert replay.recommendation() == live.recommendation()
    assert replay.certificate() == live.certificate()
