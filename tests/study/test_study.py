"""The study loop against fakes: dispatch bounds, cancellation of failed calls, budgets, events."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from engine.settings import StudyConfig
from engine.study.events import (
    JOURNAL_VERSION,
    BudgetChanged,
    Event,
    StudyFinished,
    StudyStarted,
    TaskIdentity,
)
from engine.study.observers import EventBus
from engine.study.shared import StudySetup
from engine.study.study import Study
from engine.task.split import Splits
from engine.task.types import Task
from engine.ui.live import follow
from tests.study.fakes import FakePolicy, FakeProposer, FakeScorer, pool


def make_study(
    *,
    qualities: list[int] | None = None,
    n: int = 40,
    stop_after: int | None = None,
    scorer: FakeScorer | None = None,
    events: EventBus | None = None,
    **config: object,
) -> tuple[Study, FakePolicy, FakeScorer, FakeProposer]:
    qualities = qualities or [30, 50, 80, 40, 60, 20]
    settings: dict[str, object] = {
        "task": "fake",
        "initial_candidates": len(qualities),
        "candidates_per_call": 3,
        "variant_rounds": 0,
        "concurrency": 4,
    }
    settings.update(config)
    study_config = StudyConfig.of(**settings)  # type: ignore[arg-type]
    examples = pool(n)
    task = Task("fake", examples, human_instruction="human q55")
    policy = FakePolicy(n, stop_after)
    scorer = scorer or FakeScorer()
    proposer = FakeProposer(qualities)
    setup = StudySetup(
        settings=study_config.study(),
        task=task,
        splits=Splits(demo=examples[:3], scoring=examples, test=examples[:20]),
        policy=policy,
        scorer=scorer,
        proposer=proposer,
        scoring_model="sim-1",
    )
    observers = [events.publish] if events is not None else []
    return Study(setup, observers=observers), policy, scorer, proposer


@pytest.mark.anyio
async def test_study_finds_the_best_candidate_and_evaluates_it_beside_the_human_one() -> None:
    study, _, _, proposer = make_study()
    result = await study.run()
    assert result.status == "finished"
    assert result.winner is not None
    assert result.winner.instruction.endswith("q80")
    assert result.human is not None and result.human.instruction == "human q55"
    assert result.runner_up is not None and result.runner_up.instruction.endswith("q60")
    assert result.winner.n == 20
    low, high = result.winner.test_ci
    assert low <= result.winner.test_score <= high
    assert result.spend.scoring_calls == 6 * 40 == result.full_evaluation_calls
    assert result.spend.proposal_calls == proposer.calls == 2
    assert result.spend.evaluation_calls == 3 * 20
    data = result.to_json()
    assert {"winner", "human", "candidates", "spend", "full_evaluation_calls"} <= set(data)
    assert data["candidates"][2]["pulls"] == 40


@pytest.mark.anyio
async def test_calls_in_flight_are_bounded_by_concurrency_not_by_candidates() -> None:
    scorer = FakeScorer(delay_s=0.001)
    study, *_ = make_study(qualities=list(range(10, 60)), n=10, scorer=scorer, concurrency=7)
    result = await study.run()
    assert result.status == "finished"
    assert scorer.max_in_flight == 7


@pytest.mark.anyio
async def test_a_failed_call_is_cancelled_never_scored_as_zero() -> None:
    scorer = FakeScorer(fail_every=9)
    study, policy, *_ = make_study(qualities=[100 - 1] * 1 + [50], scorer=scorer, max_failures=100)
    result = await study.run()
    assert result.status == "finished"
    assert policy.cancelled, "failed calls go back to the pool"
    assert result.spend.failed_calls == len(policy.cancelled)
    # the q99 arm answers every example right: a failure scored as 0 would show
    assert result.candidates[0].mean == 1.0 and result.candidates[0].pulls == 40
    assert result.failures == {"server": len(policy.cancelled)}


@pytest.mark.anyio
async def test_the_study_stops_with_a_clear_message_when_failures_pass_the_threshold() -> None:
    study, *_ = make_study(scorer=FakeScorer(fail_every=2), max_failures=5)
    result = await study.run()
    assert result.status == "failed"
    assert result.error is not None
    assert "calls failed for good" in result.error and "threshold" in result.error
    assert result.winner is None  # no final evaluation of a failed study


@pytest.mark.anyio
async def test_a_call_budget_stops_within_the_calls_in_flight() -> None:
    scorer = FakeScorer(delay_s=0.001)
    study, policy, *_ = make_study(scorer=scorer, budget_scoring_calls=50, concurrency=8)
    result = await study.run()
    assert result.status == "finished"
    assert "scoring_calls" in result.reason
    assert 50 <= result.spend.scoring_calls <= 50 + 8
    assert policy.pulls_used == result.spend.scoring_calls
    assert result.winner is not None


@pytest.mark.anyio
async def test_budgets_can_be_raised_while_the_study_runs() -> None:
    scorer = FakeScorer(delay_s=0.002)
    events = EventBus()
    pulls = events.subscribe(kinds={"pull_done"})
    study, *_ = make_study(scorer=scorer, budget_scoring_calls=30, concurrency=4, events=events)

    async def raise_budget() -> None:
        for _ in range(10):
            await pulls.receive.receive()
        study.set_budget("scoring_calls", 100)

    async with anyio.create_task_group() as group:
        group.start_soon(raise_budget)
        result = await study.run()
    assert 100 <= result.spend.scoring_calls <= 104


@pytest.mark.anyio
async def test_events_reach_subscribers_and_a_slow_one_drops_instead_of_blocking() -> None:
    events = EventBus()
    slow = events.subscribe(buffer=2)
    fast = events.subscribe(buffer=100_000)
    study, *_ = make_study(events=events)
    result = await study.run()
    kinds: dict[str, int] = {}
    while True:
        try:
            event = fast.receive.receive_nowait()
        except anyio.WouldBlock:
            break
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    assert kinds["candidate_added"] == 6
    assert kinds["pull_done"] == result.spend.scoring_calls
    assert kinds["leader_changed"] >= 1
    assert kinds["finished"] == 1
    assert slow.dropped > 0 and fast.dropped == 0


@pytest.mark.anyio
async def test_variants_of_the_leaders_join_the_running_study() -> None:
    study, _, _, proposer = make_study(
        variant_rounds=2, variant_leaders=2, variants_per_leader=2, stop_after=10
    )
    result = await study.run()
    assert proposer.vary_calls == 4
    variants = [c for c in result.candidates if c.origin == "resample"]
    assert len(variants) == 8
    assert all(c.pulls == 10 for c in variants)
    assert result.winner is not None
    assert result.full_evaluation_calls == 14 * 40


@pytest.mark.anyio
async def test_a_round_s_reflections_join_at_most_concurrency_calls_at_once() -> None:
    study, _, _, proposer = make_study(
        variant_rounds=1,
        variant_leaders=3,
        variants_per_leader=2,
        variants="both",
        merge=True,
        concurrency=2,
        stop_after=10,
    )
    proposer.delay_s = 0.01
    result = await study.run()
    kinds = {c.origin for c in result.candidates if c.parents}
    # the fake scorer's right answers are nested (a better instruction is right wherever a
    # worse one is): no two candidates complement each other, so there is nothing to merge
    assert kinds == {"resample", "reflect"}
    assert proposer.vary_calls == 3 and len(proposer.shown) == 3
    assert proposer.max_in_flight == 2  # a round never has more calls out than concurrency
    reflections = [shown for kind, shown in proposer.shown if kind == "reflect"]
    assert all(shown and not shown[0].right for shown in reflections)  # wrong answers first


@pytest.mark.anyio
async def test_a_share_of_the_call_budget_is_kept_for_variants() -> None:
    study, *_ = make_study(
        variant_rounds=1,
        variant_leaders=1,
        variants_per_leader=3,
        budget_scoring_calls=200,
        new_candidate_share=0.25,
    )
    result = await study.run()
    variant_pulls = sum(c.pulls for c in result.candidates if c.origin == "resample")
    assert variant_pulls >= 40
    assert result.spend.scoring_calls <= 200 + 4


@pytest.mark.anyio
@pytest.mark.parametrize("variants", ["resample", "reflect"])
async def test_the_share_stays_kept_while_the_last_round_s_calls_are_out(variants: str) -> None:
    """A reflection takes far longer than a scoring call: the scheduler must not spend the
    share kept for the round's candidates on the old ones before they arrive."""
    study, _, scorer, proposer = make_study(
        variant_rounds=1,
        variant_leaders=1,
        variants_per_leader=3,
        variants=variants,
        budget_scoring_calls=200,
        new_candidate_share=0.25,
    )
    scorer.delay_s = 0.001
    proposer.delay_s = 0.5  # long enough for 200 scoring calls at the scorer's pace
    result = await study.run()
    old = sum(c.pulls for c in result.candidates if c.origin == "initial")
    new = sum(c.pulls for c in result.candidates if c.origin == variants)
    assert old <= 150 + 4  # the policy's share while the round was out, and calls in flight
    assert new >= 46
    assert result.spend.scoring_calls <= 200 + 4


@pytest.mark.anyio
async def test_cancel_stops_the_study_and_skips_the_final_evaluation() -> None:
    scorer = FakeScorer(delay_s=0.002)
    events = EventBus()
    pulls = events.subscribe(kinds={"pull_done"})
    study, policy, *_ = make_study(scorer=scorer, events=events)

    async def cancel_soon() -> None:
        for _ in range(5):
            await pulls.receive.receive()
        study.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(cancel_soon)
        result = await study.run()
    assert result.status == "cancelled"
    assert sum(policy.pending) == 0, "calls in flight were cancelled in the policy"
    assert result.spend.evaluation_calls == 0


@pytest.mark.anyio
async def test_snapshot_shows_the_leaderboard_and_budgets() -> None:
    study, *_ = make_study(budget_scoring_calls=1000)
    await study.run()
    snapshot = study.snapshot()
    assert snapshot.done and snapshot.status == "finished"
    assert len(snapshot.arms) == 6
    assert snapshot.arms[snapshot.winner or 0].instruction.endswith("q80")
    budgets = {row.name: row for row in snapshot.budgets}
    assert budgets["scoring_calls"].limit == 1000
    assert snapshot.to_json()["proposals"]["kept"] == 6


@pytest.mark.anyio
async def test_a_display_keeps_getting_snapshots_during_the_final_evaluation() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.messages: list[str] = []

        def attach(self, control: object) -> None:
            pass

        def update(self, snapshot: object) -> None:
            self.messages.append(getattr(snapshot, "message", ""))

    study, *_ = make_study(scorer=FakeScorer(delay_s=0.01), concurrency=2)
    ui = Recorder()
    async with anyio.create_task_group() as group:
        group.start_soon(follow, ui, study)
        await study.run()
    progress = [int(m.split(": ")[1].split()[0]) for m in ui.messages if "of 60 calls" in m]
    assert len(progress) >= 3  # several updates while the 3 x 20 test calls ran
    assert progress == sorted(progress) and progress[-1] > 30
    assert ui.messages[-1].startswith("finished")


@pytest.mark.anyio
async def test_the_first_event_a_journal_gets_is_the_study_started() -> None:
    """A change made before `run()` (the Python API allows it) comes after the header."""
    seen: list[Event] = []
    study, *_ = make_study()
    started = StudyStarted(
        version=JOURNAL_VERSION,
        study_id="s1",
        engine="test",
        created=0.0,
        config={},
        task=TaskIdentity("fake", "0"),
    )
    study = Study(study.setup, observers=[seen.append], started=started)
    study.set_budget("scoring_calls", 50)
    await study.run()
    assert isinstance(seen[0], StudyStarted) and isinstance(seen[1], BudgetChanged)
    assert isinstance(seen[-1], StudyFinished) and study.study_id == "s1"


@pytest.mark.anyio
async def test_while_a_round_is_out_the_status_says_what_the_scoring_waits_for() -> None:
    study = _slow_reflection_study(delay_s=0.3)
    seen: list[str] = []

    async def watch() -> None:
        while True:
            seen.append(study.snapshot().message)
            await anyio.sleep(0.02)

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        await study.run()
        group.cancel_scope.cancel()
    assert (
        "variant round 1 (reflect): 1 proposal call out, 25% of the scoring budget kept for "
        "their candidates"
    ) in seen


@pytest.mark.anyio
async def test_lowering_the_share_while_a_round_is_out_lets_the_scoring_go_on() -> None:
    study = _slow_reflection_study(delay_s=2.0)

    def scored() -> int:
        return study.state.spend.scoring_calls

    async def release() -> None:
        await _until(lambda: scored() >= 150, timeout_s=10)  # the old pool's share
        await anyio.sleep(0.3)
        assert scored() <= 154  # the scoring waits for the round
        study.set_new_candidate_share(0.0)
        await _until(lambda: scored() > 154, timeout_s=1.5)  # well before the round is back

    async with anyio.create_task_group() as group:
        group.start_soon(release)
        result = await study.run()
    assert result.spend.scoring_calls <= 204


async def _until(condition: Callable[[], bool], *, timeout_s: float) -> None:
    with anyio.fail_after(timeout_s):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


def _slow_reflection_study(*, delay_s: float) -> Study:
    """200 scoring calls, a quarter kept for one round of reflections that take `delay_s`."""
    study, _, _, proposer = make_study(
        variant_rounds=1, variant_leaders=1, variants_per_leader=2, variants="reflect",
        budget_scoring_calls=200, new_candidate_share=0.25,
    )  # fmt: skip
    proposer.delay_s = delay_s
    return study
