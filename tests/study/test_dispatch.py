"""The dispatcher: pulls chosen together go out candidate by candidate (an order, nothing more),
and with late binding a pull is chosen only when its call can be sent."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.app import StudyConfig, open_study, prepare
from engine.search.policy import Pull
from engine.sim import SimConfig, serve_sim
from engine.study.dispatch import by_candidate
from engine.task import load_task
from tests.study.fakes import FakeScorer
from tests.study.test_study import make_study

pulls = st.lists(st.builds(Pull, arm=st.integers(0, 6), example=st.integers(0, 50)), max_size=40)


@given(pulls)
def test_grouping_reorders_pulls_and_never_adds_drops_or_changes_one(chosen: list[Pull]) -> None:
    grouped = by_candidate(chosen)
    assert Counter(grouped) == Counter(chosen)
    arms = [pull.arm for pull in grouped]
    # each candidate's pulls are together, candidates in the order they were first chosen
    assert arms == sorted(arms, key=lambda arm: [p.arm for p in chosen].index(arm))
    for arm in set(arms):
        mine = [pull for pull in chosen if pull.arm == arm]
        assert [pull for pull in grouped if pull.arm == arm] == mine  # order kept within one


@pytest.mark.anyio
@pytest.mark.parametrize("grouping", [True, False])
async def test_every_chosen_pull_is_scored_once_grouped_or_not(grouping: bool) -> None:
    scorer = FakeScorer(delay_s=0.001)
    study, policy, _, _ = make_study(scorer=scorer, concurrency=8, group_by_candidate=grouping)
    chosen: list[tuple[int, int]] = []
    select = policy.select

    def recording(k: int) -> list:  # type: ignore[type-arg]
        out = select(k)
        chosen.extend((pull.arm, pull.example) for pull in out)
        return out

    policy.select = recording  # type: ignore[method-assign]
    result = await study.run()
    cancelled = Counter((pull.arm, pull.example) for pull in policy.cancelled)
    scored = Counter((arm, example) for arm, example, _ in policy.observed)
    assert Counter(chosen) == scored + cancelled
    assert result.spend.scoring_calls == sum(scored.values())


async def _max_pending(late: bool, folder: Path) -> tuple[int, int]:
    """(most pulls the policy counted in flight, scoring calls) of a rate-limited study."""
    task = load_task("larger_number", seed=2)
    async with serve_sim(SimConfig(tasks=(task,), seed=2, latency_base_s=0.05)) as server:
        config = StudyConfig.of(
            task="larger_number",
            seed=2,
            base_url=server.base_url,
            rpm=600,
            concurrency=64,
            budget_scoring_calls=60,
            initial_candidates=6,
            variant_rounds=0,
            test_size=1,
            no_cache=True,
            late_binding=late,
            journal=str(folder / f"late-{late}.jsonl"),
        )
        most = 0
        async with open_study(prepare(config), say=lambda _: None) as running:

            async def watch() -> None:
                nonlocal most
                while True:
                    pending = sum(row.pending for row in running.snapshot().arms)
                    most = max(most, pending)
                    await anyio.sleep(0.02)

            async with anyio.create_task_group() as group:
                group.start_soon(watch)
                result = await running.run()
                group.cancel_scope.cancel()
        return most, result.spend.scoring_calls


@pytest.mark.anyio
@pytest.mark.integration
async def test_with_late_binding_the_policy_counts_only_calls_on_the_wire(tmp_path: Path) -> None:
    """At 10 requests a second and 50 ms each, about one call is on the wire; the other 63
    slots only wait. Choosing first, the policy counts them all as pending; choosing late, it
    counts those sent (a burst of the bucket at most)."""
    late, calls = await _max_pending(True, tmp_path)
    early, _ = await _max_pending(False, tmp_path)
    assert 60 <= calls <= 61
    assert early >= 30, early
    assert late <= 8, late
