"""Parents from the per-example Pareto front: who is on it, dominance, sampling by wins, and
the pair a merge takes."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.propose import front_wins, merge_pair, sample_parents

N = np.nan


def test_the_front_keeps_each_example_s_best_and_drops_the_dominated() -> None:
    rewards = np.array(
        [
            [1, 1, 0, 0, 1],  # 0: best on 0, 1, 4
            [1, 0, 1, 0, 1],  # 1: best on 0, 2, 4: on 2 alone
            [1, 1, 0, 0, 0],  # 2: only where 0 is best too: dominated
            [0, 0, 0, 0, 0],  # 3: best nowhere (example 3: nobody right, it counts not)
        ],
        dtype=float,
    )
    wins = front_wins(rewards, means=[0.6, 0.6, 0.4, 0.0])
    assert wins == {0: 3, 1: 3}


def test_of_two_with_the_same_wins_the_better_mean_stays() -> None:
    rewards = np.array([[1, 0], [1, 0], [0, 1]], dtype=float)
    assert front_wins(rewards, means=[0.4, 0.7, 0.5]) == {1: 1, 2: 1}


def test_an_example_scored_by_one_candidate_only_tells_nothing() -> None:
    rewards = np.array([[1, 1, N], [0, N, 1]], dtype=float)
    # example 1 and 2 have one candidate each: only example 0 counts
    assert front_wins(rewards, means=[0.9, 0.5]) == {0: 1}


def test_candidates_that_may_not_take_part_are_left_out() -> None:
    rewards = np.array([[1, 0], [0, 1], [1, 1]], dtype=float)
    assert front_wins(rewards, means=[0.5, 0.5, 0.9]) == {2: 2}
    assert front_wins(rewards, means=[0.5, 0.5, 0.9], eligible=[True, True, False]) == {
        0: 1,
        1: 1,
    }


def test_continuous_rewards_compare_by_value() -> None:
    rewards = np.array([[0.9, 0.2], [0.5, 0.6]], dtype=float)
    assert front_wins(rewards, means=[0.55, 0.55]) == {0: 1, 1: 1}


reward_tables = arrays(
    np.float64,
    st.tuples(st.integers(1, 8), st.integers(1, 12)),
    elements=st.sampled_from([0.0, 1.0, np.nan, 0.5]),
)


@settings(max_examples=200, deadline=None)
@given(reward_tables, st.data())
def test_every_counted_example_keeps_a_winner_and_no_kept_one_is_dominated(
    rewards: np.ndarray, data: st.DataObject
) -> None:
    arms, examples = rewards.shape
    means = data.draw(st.lists(st.floats(0, 1), min_size=arms, max_size=arms))
    wins = front_wins(rewards, means)
    kept = set(wins)
    fronts = []
    for e in range(examples):
        column = rewards[:, e]
        scored = ~np.isnan(column)
        if scored.sum() < 2 or np.nanmax(column) <= 0:
            continue
        fronts.append({a for a in range(arms) if scored[a] and column[a] == np.nanmax(column)})
    for front in fronts:
        assert front & kept  # every example that counts keeps one of its best
    for arm in kept:
        mine = [front for front in fronts if arm in front]
        assert wins[arm] == sum(1 for front in mine if arm in front) > 0
        # not dominated: on some example it wins, no other kept candidate does
        assert any(not (front & (kept - {arm})) for front in mine)


@given(
    st.dictionaries(st.integers(0, 30), st.integers(0, 9), max_size=12),
    st.integers(0, 15),
    st.sets(st.integers(0, 30), max_size=5),
    st.integers(0, 2**32),
)
def test_sampled_parents_are_distinct_winners_not_excluded(
    wins: dict[int, int], count: int, exclude: set[int], seed: int
) -> None:
    chosen = sample_parents(wins, count, random.Random(seed), exclude)
    assert len(chosen) == len(set(chosen))
    assert all(wins[arm] > 0 and arm not in exclude for arm in chosen)
    available = sum(1 for arm, n in wins.items() if n > 0 and arm not in exclude)
    assert len(chosen) == min(count, available)


def test_parents_are_drawn_in_proportion_to_their_wins() -> None:
    rng = random.Random(0)
    firsts = Counter(sample_parents({0: 1, 1: 3}, 1, rng)[0] for _ in range(4000))
    assert 0.7 < firsts[1] / 4000 < 0.8  # 3 of 4


def test_a_merge_pairs_two_that_are_each_right_where_the_other_is_wrong() -> None:
    rewards = np.array(
        [
            [1, 1, 0, 0, N],
            [1, 0, 1, 1, 1],
            [1, 1, 0, 0, 0],
        ],
        dtype=float,
    )
    wins = front_wins(rewards, means=[0.5, 0.8, 0.4])
    pair = merge_pair(rewards, wins, random.Random(1))
    assert pair is not None and {pair.first, pair.second} == {0, 1}
    only = {pair.first: pair.first_only, pair.second: pair.second_only}
    assert only[0] == (1,) and only[1] == (2, 3)  # example 4: candidate 0 was not scored on it


def test_no_merge_without_two_complementary_candidates() -> None:
    rewards = np.array([[1, 1, 1], [1, 0, 0]], dtype=float)
    wins = front_wins(rewards, means=[1.0, 0.3])
    assert merge_pair(rewards, wins, random.Random(0)) is None
    assert merge_pair(np.zeros((0, 0)), {}, random.Random(0)) is None
