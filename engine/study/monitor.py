"""The monitor: the study's clock, the policy's read-outs as events, and when to stop.

Every tick (0.1 s) it publishes what the policy concluded since the last one (an arm
eliminated, a new leader), records the running time about once a second (`TimePassed`, what a
resumed study's time budget counts from), and asks whether the study is done. A study stops at
the first of: a stop asked for (cancel, failures past the threshold), a budget reached, or --
once nothing is in flight and no proposal is due -- the policy's stopping rule, the scoring
budget spent, or nothing left to pull.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from engine.errors import setting
from engine.study.events import ArmEliminated, LeaderChanged, TimePassed
from engine.study.learning import check_learning
from engine.study.proposing import variants_due
from engine.study.settings import BudgetName
from engine.study.shared import Shared

__all__ = ["TICK_S", "Monitor"]

TICK_S = 0.1
_TIME_EVERY_S = 1.0


class Monitor:
    def __init__(self, shared: Shared, stop: Callable[[str, str], None]) -> None:
        self._shared = shared
        self._stop = stop  # (status, reason)
        self._last_time = -_TIME_EVERY_S

    async def run(self) -> None:
        while True:
            await anyio.sleep(TICK_S)
            self.publish_arms()
            self.keep_time()
            check_learning(self._shared)
            stop = self.stop_reason()
            if stop is not None:
                self._stop(*stop)
                return

    def keep_time(self, *, force: bool = False) -> None:
        seconds = self._shared.activity.seconds()
        if force or seconds - self._last_time >= _TIME_EVERY_S:
            self._last_time = seconds
            self._shared.emit(TimePassed(seconds=round(seconds, 3)))

    def publish_arms(self) -> None:
        shared = self._shared
        state = shared.state
        for arm in state.arms:
            if arm.index in state.eliminated or arm.index in state.dropped:
                continue
            stats = state.policy.stats(arm.index)
            if stats.state == "eliminated":
                shared.emit(ArmEliminated(arm=arm.index, upper=float(stats.upper)))
        leader = state.policy.recommendation()
        if leader is not None and leader != state.leader:
            mean = float(state.policy.stats(leader).mean)
            shared.emit(LeaderChanged(arm=leader, previous=state.leader, mean=mean))

    def stop_reason(self) -> tuple[str, str] | None:
        """(status, reason) when the study should stop now, else None."""
        shared = self._shared
        state, activity = shared.state, shared.activity
        reached = state.budgets.reached(state.spend, seconds=activity.seconds())
        if reached is not None:
            return "stopping", self._reached(reached)
        if not activity.initial_done or state.status == "paused":
            return None
        if not state.arms:
            first = next(iter(state.first_errors.values()), "")
            why = f": {first}" if first else " (the proposal model's answers were all rejected)"
            return "failed", f"no candidate instruction could be proposed{why}"
        if activity.in_flight or (variants_due(shared) and self._variants_have_room()):
            return None
        if state.policy.budget_exhausted():  # the policy owns the scoring-call budget
            return "stopping", self._reached("scoring_calls")
        if state.policy.done():
            return "stopping", self._settled()
        pulls = state.policy.select(1)  # idle but not done: is there anything left to pull?
        if not pulls:
            return "stopping", "the policy has no pull left to give (every candidate is settled)"
        for pull in pulls:
            state.policy.cancel(pull)
        activity.notify()
        return None

    def _reached(self, name: BudgetName) -> str:
        """A budget reached; one of no scoring call at all says that nothing was compared."""
        reason = f"budget {name} reached ({self._budget_text(name)})"
        if self._shared.state.spend.scoring_calls == 0:
            reason += (
                ": no candidate was scored, so none was compared with another (raise "
                f"{setting(f'budget_{name}')} to score them)"
            )
        return reason

    def _settled(self) -> str:
        """Why the policy is done: its stopping rule -- or, when every answer scored the same,
        that nothing was learned (a rule that separates equal candidates picks one at random)."""
        state = self._shared.state
        scored = sum(int(state.policy.stats(arm.index).count) for arm in state.arms)
        if scored and state.reward_low == state.reward_high:
            return (
                f"nothing was learned: every one of the {scored:,} answers scored "
                f"{state.reward_low:g}, so no candidate can be told from another"
            )
        return "the policy's stopping rule holds: the winner is identified"

    def _variants_have_room(self) -> bool:
        shared = self._shared
        limit = shared.state.budgets.limit("scoring_calls")
        return limit is None or shared.state.spend.scoring_calls < limit

    def _budget_text(self, name: BudgetName) -> str:
        state = self._shared.state
        limit = state.budgets.limit(name)
        spent = self._shared.activity.seconds() if name == "seconds" else state.spend.value(name)
        return f"{spent:g} of {limit:g}" if limit is not None else ""
