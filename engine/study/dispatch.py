"""The dispatcher: scoring calls, as many in flight as the study's concurrency.

A pool of worker tasks, one per unit of concurrency (more are started when it is raised): each
takes a slot of the study's capacity limiter, asks the policy for one pull, sends it and gives
the slot back; with nothing to pull it gives the slot back and waits until something changes (a
result, a new candidate, a budget, resume). Lowering the concurrency parks the extra workers at
the limiter. So the calls in flight are bounded by the concurrency, never by the number of
candidates, and each costs a coroutine and a small frame. A call that fails for good is cancelled in the policy (its
example goes back to the pool; it is never scored as 0) and reported to the study, which counts
it and stops past its failure threshold; a call held back unsent by a pause goes back the same
way and costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from engine.errors import EndpointError
from engine.llm.errors import QuotaExceededError
from engine.llm.gate import SEND_GATE, CallHeldBack
from engine.search.policy import Pull
from engine.study.events import PullDone
from engine.study.scoring import CachingScorer, Score
from engine.study.shared import Shared

__all__ = ["Dispatcher", "FailureReport"]

#: How the dispatcher and the proposal loop report a call that failed for good:
#: (error, role, fatal) -> None.
FailureReport = Callable[[EndpointError, str, bool], None]


class Dispatcher:
    def __init__(self, shared: Shared, failed: FailureReport) -> None:
        self._shared = shared
        self._failed = failed
        self._group: TaskGroup | None = None
        self._workers = 0

    async def run(self) -> None:
        """Send scoring calls until the study stops (its task group is cancelled)."""
        SEND_GATE.set(self._shared.activity.gate)  # the workers' calls (copies) obey pause
        async with anyio.create_task_group() as group:
            self._group = group
            self.grow()

    def grow(self) -> None:
        """Start workers up to the concurrency (called again when it is raised)."""
        if self._group is None:
            return
        while self._workers < self._shared.activity.concurrency:
            self._group.start_soon(self._worker)
            self._workers += 1

    async def _worker(self) -> None:
        activity = self._shared.activity
        while not activity.stop_requested:
            changed = activity.changed  # taken before asking, so no change is missed
            async with activity.capacity:
                pull = self._next_pull()
                if pull is not None:
                    await self._score(pull)
                    continue
            await changed.wait()

    async def _score(self, pull: Pull) -> None:
        held = self._held(pull)
        if held is not None:  # answered at once: the next choice knows it
            self._observe(pull, held)
            await anyio.lowlevel.checkpoint()
            return
        self._shared.activity.scoring_in_flight += 1
        await self._send(pull)

    def _held(self, pull: Pull) -> Score | None:
        """The answer the scorer already holds for `pull` (its response cache), if any."""
        scorer = self._shared.setup.scorer
        if not isinstance(scorer, CachingScorer):
            return None
        state = self._shared.state
        example = self._shared.setup.splits.scoring[pull.example]
        return scorer.cached(state.arms[pull.arm].instruction, example)

    def _next_pull(self) -> Pull | None:
        shared = self._shared
        if shared.state.status == "paused" or shared.activity.stop_requested:
            return None
        seconds = shared.activity.seconds()
        if shared.state.budgets.reached(shared.state.spend, seconds=seconds) is not None:
            return None
        pulls = shared.state.policy.select(1)
        return pulls[0] if pulls else None

    async def _send(self, pull: Pull) -> None:
        shared = self._shared
        activity = shared.activity
        policy = shared.state.policy
        settled = False
        try:
            instruction = shared.state.arms[pull.arm].instruction
            example = shared.setup.splits.scoring[pull.example]
            try:
                score = await shared.setup.scorer.score(instruction, example)
            except CallHeldBack:  # paused before it was sent: nothing was paid
                policy.cancel(pull)
                settled = True
                return
            except EndpointError as error:
                policy.cancel(pull)
                settled = True
                self._failed(error, "scoring", isinstance(error, QuotaExceededError))
                return
            settled = True
            self._observe(pull, score)
        finally:
            if not settled:  # cancelled in flight: the pull goes back to the pool
                policy.cancel(pull)
            activity.scoring_in_flight -= 1
            activity.notify()

    def _observe(self, pull: Pull, score: Score) -> None:
        setup = self._shared.setup
        usd = setup.prices.cost(
            score.model or setup.scoring_model, score.prompt_tokens, score.completion_tokens
        )
        self._shared.emit(
            PullDone(
                arm=pull.arm,
                example=pull.example,
                reward=min(1.0, max(0.0, float(score.reward))),
                prompt_tokens=score.prompt_tokens,
                completion_tokens=score.completion_tokens,
                usd=0.0 if score.cached else usd,
                latency_s=round(max(0.0, score.latency_s), 4),
                cached=score.cached,
                answer=score.answer[: setup.settings.answer_chars],
            )
        )
        self._shared.activity.calls.add()
