"""A variant round's calls from the state: parents, the kinds each gets, what a reflection is
shown, the merge; and the answers the state keeps for them."""

from __future__ import annotations

import msgspec

from engine.settings import StudyConfig
from engine.study.events import CandidateAdded, PullDone
from engine.study.settings import ProposalPlan
from engine.study.state import StudyState
from engine.study.variants import round_calls
from tests.study.fakes import FakePolicy, pool

POOL = pool(20)


def state_with(rewards: dict[int, list[float]], **plan: object) -> tuple[StudyState, ProposalPlan]:
    """Candidates 'c<i>', each scored on examples 0, 1, ... with the rewards given."""
    settings = StudyConfig.of(task="fake", reflection_errors=2, **plan).study()  # type: ignore[arg-type]
    state = StudyState(settings, FakePolicy(len(POOL)))
    for arm in sorted(rewards):
        state.apply(CandidateAdded(arm=arm, instruction=f"c{arm}", origin="initial"))
    for arm, row in rewards.items():
        for example, reward in enumerate(row):
            state.apply(
                PullDone(arm=arm, example=example, reward=reward, answer=f"a{arm}.{example}")
            )
    return state, settings.proposals


def test_a_reflection_is_shown_wrong_answers_then_half_as_many_right_ones() -> None:
    state, plan = state_with({0: [0, 1, 0, 1, 0, 0, 1]}, variants="reflect", variant_leaders=1)
    (call,) = round_calls(state, POOL, plan, 1)
    assert call.kind == "reflect" and call.n == plan.variants_per_leader
    assert [e.right for e in call.evidence] == [False, False, True]
    wrong = call.evidence[0]
    example = int(wrong.answer.split(".")[1])
    assert (wrong.input, wrong.expected) == (POOL[example].input, POOL[example].outputs[0])
    assert state.book.kept(0).wrong[0].answer == "a0.0"  # the first wrong answers are kept
    assert len(state.book.kept(0).wrong) == 4  # twice what a reflection is shown
    # the draw is seeded by round and parent: asked again, the same
    assert round_calls(state, POOL, plan, 1) == [call]


def test_a_parent_with_nothing_wrong_is_reworded_instead() -> None:
    state, plan = state_with({0: [1, 1, 1], 1: [1, 0, 0]}, variants="reflect", variant_leaders=2)
    calls = round_calls(state, POOL, plan, 1)
    assert [(c.kind, c.parents[0].arm, c.n) for c in calls] == [
        ("resample", 0, 3),
        ("reflect", 1, 3),
    ]


def test_both_splits_each_parent_s_variants_or_alternates_parents() -> None:
    rewards = {0: [1, 0, 1], 1: [0, 1, 0], 2: [0, 0, 1]}
    state, plan = state_with(rewards, variants="both", variant_leaders=3, variants_per_leader=3)
    calls = round_calls(state, POOL, plan, 1)
    assert [(c.kind, c.parents[0].arm, c.n) for c in calls] == [
        ("reflect", 0, 2), ("resample", 0, 1), ("reflect", 1, 2), ("resample", 1, 1),
        ("reflect", 2, 2), ("resample", 2, 1),
    ]  # fmt: skip
    one = msgspec.structs.replace(plan, variants_per_leader=1)
    assert [c.kind for c in round_calls(state, POOL, one, 1)] == ["reflect", "resample", "reflect"]


def test_pareto_parents_start_with_the_best_leader_then_the_front() -> None:
    # 0 leads by mean; 3 is best alone on example 3; 1 and 2 win nothing of their own
    rewards = {0: [1, 1, 1, 0], 1: [1, 1, 0, 0], 2: [1, 0, 1, 0], 3: [0, 0, 0, 1]}
    state, plan = state_with(rewards, parents="pareto", variant_leaders=2)
    assert [c.parents[0].arm for c in round_calls(state, POOL, plan, 1)] == [0, 3]
    leaders = msgspec.structs.replace(plan, parents="leaders")
    assert [c.parents[0].arm for c in round_calls(state, POOL, leaders, 1)] == [0, 1]


def test_a_merge_pairs_two_that_win_on_different_examples() -> None:
    rewards = {0: [1, 1, 0, 0], 1: [0, 0, 1, 1], 2: [0, 0, 0, 0]}
    state, plan = state_with(rewards, variant_leaders=1, merge=True)
    calls = round_calls(state, POOL, plan, 1)
    merge = calls[-1]
    assert merge.kind == "merge" and {p.arm for p in merge.parents} == {0, 1}
    first_only = {e.input for e in merge.evidence}
    second_only = {e.input for e in merge.second_evidence}
    by_arm = {merge.parents[0].arm: first_only, merge.parents[1].arm: second_only}
    assert by_arm == {0: {"x0", "x1"}, 1: {"x2", "x3"}}
    assert plan.calls_per_round() == len(calls) == 2


def test_no_merge_when_no_two_candidates_complement_each_other() -> None:
    state, plan = state_with({0: [1, 1], 1: [1, 0]}, variant_leaders=1, merge=True)
    assert [c.kind for c in round_calls(state, POOL, plan, 1)] == ["resample"]
