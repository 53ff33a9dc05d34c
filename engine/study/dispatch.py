"""The dispatcher: scoring calls, as many in flight as the study's concurrency, each chosen when
it can be sent.

One loop works in rounds. A round takes the free slots of the study's capacity limiter; when the
scorer's calls wait at a rate limiter, it first waits for one permit there and takes whatever
further permits are ready at once (late binding: a pull is chosen only when its call can go out,
on what the policy knows then, and the pulls the policy counts as pending are those on the
wire). Then it asks the policy for that many pulls together, orders them by candidate so each
candidate's calls go out back to back (servers reuse the key-value cache of a prompt prefix they
have just seen; the order changes nothing the policy chose), matches them to the permits
ordered by endpoint (an endpoint pool's permits come from several servers: a candidate's calls
go to one), and starts each call as a task that gives its slot back when it ends. With nothing to pull it gives everything back and waits until
something changes (a result, a new candidate, a budget, resume). A permit never used is refunded
to the limiter. A call that fails for good is cancelled in the policy (its example goes back to
the pool; it is never scored as 0) and reported to the study; a call held back unsent by a pause
goes back the same way and costs nothing. Answers the response cache already holds are taken at
once, so the next choice knows them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from engine.errors import EndpointError, ScorerError
from engine.llm.errors import STOPS_STUDY
from engine.llm.pacing.gate import ADMITTED, SEND_GATE, Admitted, CallHeldBack
from engine.llm.pacing.limiter import Permit, RateLimiter
from engine.search.policy import Pull
from engine.study.events import NOTE_CHARS, PullDone
from engine.study.scoring import CachingScorer, PacedScorer, Score
from engine.study.shared import Shared, demo_set

__all__ = ["Dispatcher", "FailureReport", "by_candidate", "by_endpoint"]

_HELD_PER_ROUND = 256  # answers from the cache taken in one round before the loop yields

#: How the dispatcher and the proposal loop report a call that failed for good, or the user's
#: scorer failing on it (a `ScorerError`, which stops the study): (error, role, fatal) -> None.
FailureReport = Callable[[EndpointError | ScorerError, str, bool], None]


def by_candidate(pulls: Sequence[Pull]) -> list[Pull]:
    """The same pulls, each candidate's together, candidates in the order they first appear."""
    first: dict[int, int] = {}
    for index, pull in enumerate(pulls):
        first.setdefault(pull.arm, index)
    return sorted(pulls, key=lambda pull: first[pull.arm])


def by_endpoint(permits: Sequence[Permit]) -> list[Permit]:
    """The same permits, each endpoint's together (a pool's permits come from several
    limiters), endpoints in the order they first appear: matched to pulls ordered by candidate,
    a candidate's calls go to one server, whose prefix cache holds its instruction."""
    first: dict[int, int] = {}
    for index, permit in enumerate(permits):
        first.setdefault(id(permit.limiter), index)
    return sorted(permits, key=lambda permit: first[id(permit.limiter)])


class Dispatcher:
    def __init__(self, shared: Shared, failed: FailureReport) -> None:
        self._shared = shared
        self._failed = failed
        self._tokens = _TypicalCall()

    async def run(self) -> None:
        """Send scoring calls until the study stops (its task group is cancelled)."""
        SEND_GATE.set(self._shared.activity.gate)  # the calls (copies of this context) obey pause
        async with anyio.create_task_group() as group:
            while not self._shared.activity.stop_requested:
                await self._round(group)

    def grow(self) -> None:
        """The concurrency was raised: the next round sees the new slots."""
        self._shared.activity.notify()

    async def _round(self, group: TaskGroup) -> None:
        activity = self._shared.activity
        changed = activity.changed  # taken first, so no change is missed while asking
        # never more than the policy can place: the permits of a round are reserved first
        free = min(int(activity.capacity.available_tokens), self._shared.state.policy.open_pulls())
        if free <= 0 or not self._may_send():
            await changed.wait()
            return
        permits = await self._admit(free)
        pulls = self._next_pulls(len(permits) if permits is not None else free)
        if permits is not None:
            for unused in permits[len(pulls) :]:
                unused.refund()
            permits = by_endpoint(permits[: len(pulls)])
        if not pulls:
            if activity.changed is changed:  # nothing happened meanwhile (no answer was held)
                await changed.wait()
            return
        if self._shared.setup.settings.throughput.group_by_candidate:
            pulls = by_candidate(pulls)
        for index, pull in enumerate(pulls):
            self._start(group, pull, permits[index] if permits is not None else None)
        await anyio.lowlevel.checkpoint()

    def _may_send(self) -> bool:
        shared = self._shared
        if shared.state.status == "paused" or shared.activity.stop_requested:
            return False
        seconds = shared.activity.seconds()
        return shared.state.budgets.reached(shared.state.spend, seconds=seconds) is None

    async def _admit(self, free: int) -> list[Permit] | None:
        """Up to `free` permits of the rate limiter the scorer's calls wait at: wait for the
        first, take the others that are ready now; None when the scorer is not paced."""
        limiter = self._limiter()
        if limiter is None:
            return None
        tokens, output = self._tokens.estimate()
        permits = [await limiter.acquire(tokens, output_tokens=output)]
        while len(permits) < free and self._may_send():
            permit = limiter.try_acquire(tokens, output_tokens=output)
            if permit is None:
                break
            permits.append(permit)
        return permits

    def _limiter(self) -> RateLimiter | None:
        scorer = self._shared.setup.scorer
        if not self._shared.setup.settings.throughput.late_binding or not isinstance(
            scorer, PacedScorer
        ):
            return None
        return scorer.limiter

    def _next_pulls(self, count: int) -> list[Pull]:
        """Up to `count` pulls to send, asked one at a time so that an answer the cache holds
        is observed before the next choice (a bounded number per round: the loop yields)."""
        chosen: list[Pull] = []
        held = 0
        while len(chosen) < count and held < _HELD_PER_ROUND and self._may_send():
            pulls = self._shared.state.policy.select(1)
            if not pulls:
                break
            answer = self._held(pulls[0])
            if answer is None:
                chosen.append(pulls[0])
            else:
                self._observe(pulls[0], answer)
                held += 1
        return chosen

    def _start(self, group: TaskGroup, pull: Pull, permit: Permit | None) -> None:
        slot = object()
        try:
            self._shared.activity.capacity.acquire_on_behalf_of_nowait(slot)
        except anyio.WouldBlock:  # the concurrency was lowered meanwhile
            self._shared.state.policy.cancel(pull)
            if permit is not None:
                permit.refund()
            return
        self._shared.activity.scoring_in_flight += 1
        group.start_soon(self._send, pull, slot, permit)

    def _held(self, pull: Pull) -> Score | None:
        """The answer the scorer already holds for `pull` (its response cache), if any."""
        scorer = self._shared.setup.scorer
        if not isinstance(scorer, CachingScorer):
            return None
        arm = self._shared.state.arms[pull.arm]
        example = self._shared.setup.splits.scoring[pull.example]
        demos = demo_set(self._shared, arm.demos)
        if demos is None:
            return scorer.cached(arm.instruction, example)
        return scorer.cached(arm.instruction, example, demos)

    async def _send(self, pull: Pull, slot: object, permit: Permit | None) -> None:
        shared = self._shared
        activity = shared.activity
        policy = shared.state.policy
        admitted = Admitted(permit) if permit is not None else None
        ADMITTED.set(admitted)  # this task's own context: its first call takes the permit
        settled = False
        try:
            arm = shared.state.arms[pull.arm]
            example = shared.setup.splits.scoring[pull.example]
            demos = demo_set(shared, arm.demos)
            try:
                score = await (
                    shared.setup.scorer.score(arm.instruction, example)
                    if demos is None
                    else shared.setup.scorer.score(arm.instruction, example, demos)
                )
            except CallHeldBack:  # paused before it was sent: nothing was paid
                policy.cancel(pull)
                settled = True
                return
            except EndpointError as error:
                policy.cancel(pull)
                settled = True
                self._failed(error, "scoring", isinstance(error, STOPS_STUDY))
                return
            except ScorerError as error:  # the user's metric or scorer, not the endpoint
                policy.cancel(pull)
                settled = True
                self._failed(error, "scoring", True)
                return
            settled = True
            self._observe(pull, score)
        finally:
            if not settled:  # cancelled in flight: the pull goes back to the pool
                policy.cancel(pull)
            if admitted is not None and not admitted.taken:
                admitted.permit.refund()
            activity.scoring_in_flight -= 1
            activity.capacity.release_on_behalf_of(slot)
            activity.notify()

    def _observe(self, pull: Pull, score: Score) -> None:
        setup = self._shared.setup
        self._shared.emit(
            PullDone(
                arm=pull.arm,
                example=pull.example,
                reward=min(1.0, max(0.0, float(score.reward))),
                prompt_tokens=score.prompt_tokens,
                completion_tokens=score.completion_tokens,
                usd=score.usd(setup.prices, setup.scoring_model),
                latency_s=round(max(0.0, score.latency_s), 4),
                cached=score.cached,
                answer=score.answer[: setup.settings.answer_chars],
                note=score.note[:NOTE_CHARS],
            )
        )
        if not score.cached:
            self._tokens.add(score.prompt_tokens, score.completion_tokens)
        self._shared.activity.calls.add()


class _TypicalCall:
    """The tokens a scoring call takes, as the last calls reported them (what a permit is asked
    for before the call is chosen; the client re-bases it on the real request)."""

    def __init__(self) -> None:
        self._prompt = 0.0
        self._completion = 0.0
        self._seen = 0

    def add(self, prompt_tokens: int, completion_tokens: int) -> None:
        weight = 1.0 / min(self._seen + 1, 32)  # the mean of the first calls, then an average
        self._prompt += (prompt_tokens - self._prompt) * weight
        self._completion += (completion_tokens - self._completion) * weight
        self._seen += 1

    def estimate(self) -> tuple[int, int]:
        """(tokens, of which output tokens) of a typical call."""
        completion = round(self._completion)
        return round(self._prompt) + completion, completion
