"""The proposal loop: the first batch of candidates, then variants of the leaders while scoring
runs (iterative APE, docs/design.md, "Proposals").

The task's human instruction joins first when asked for, then the user's own candidates (origin
"user"; they do not count against `initial_candidates`). The first batch comes from several
proposal calls at once, retried a bounded number of times. Then, once per variant round, when
the policy is done with the pool it has or enough pulls have come in since the last round, the
round's parents get variants: rewordings, reflections on their answers, or both, and a merge
(`engine.study.variants`); each call's candidates join the study as soon as it returns, while
scoring goes on. Until the rounds are over a share of the scoring budget is kept for
the candidates still to come (`scoring_limit`). Every proposal call counts against the
proposal-call budget; a call that fails for good is reported, never fatal by itself unless it is
a quota error.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence

import anyio

from engine.errors import EndpointError
from engine.llm.errors import STOPS_STUDY
from engine.propose import Proposal, ProposalBatch, instruction_key
from engine.study.demos import Bootstrap, right_set, round_plan
from engine.study.dispatch import FailureReport
from engine.study.events import CandidateAdded, ProposalsDone, VariantRoundStarted
from engine.study.scoring import Score
from engine.study.shared import Shared, demo_set
from engine.study.state import prompt_key
from engine.study.variants import VariantCall, leaders, round_calls

_CALL_KINDS = ("initial", "resample", "reflect", "merge")

__all__ = ["ProposalLoop", "scoring_limit", "variants_due"]


def variants_due(shared: Shared) -> bool:
    """Are variant rounds still to come, or the proposals of one still on their way? (A round
    counts as done when it starts; its candidates are still to come until its calls are back.)"""
    plan = shared.setup.settings.proposals
    activity = shared.activity
    if activity.proposer_idle:
        return False
    return activity.round_in_flight or (
        shared.state.variant_rounds_done < plan.variant_rounds
        and len(shared.state.arms) < plan.max_candidates
    )


def scoring_limit(shared: Shared) -> float | None:
    """The scoring-call budget open to the current pool: while variant rounds are due, a share
    of it is kept for the candidates still to come."""
    limit = shared.state.budgets.limit("scoring_calls")
    if limit is None:
        return None
    return limit * (1.0 - shared.state.share) if variants_due(shared) else limit


class ProposalLoop:
    def __init__(
        self, shared: Shared, failed: FailureReport, budget_changed: Callable[[], None]
    ) -> None:
        self._shared = shared
        self._failed = failed
        self._budget_changed = budget_changed  # the policy's share of the budget moved

    async def run(self) -> None:
        await self._first_batch()
        activity = self._shared.activity
        activity.initial_done = True
        if not self._shared.state.arms:
            return  # the study's monitor stops it: nothing could be proposed
        self._budget_changed()
        while variants_due(self._shared) and not activity.stop_requested:
            if not await self._round_is_due() or not self._room_for_variants():
                break
            await self._variant_round()
        activity.proposer_idle = True
        self._budget_changed()

    # -- the first batch -------------------------------------------------------------------------

    async def _first_batch(self) -> None:
        shared = self._shared
        plan = shared.setup.settings.proposals
        human = shared.setup.task.human_instruction
        if human and plan.include_human and not shared.state.arms:
            self._add(human, "human")
        for candidate in shared.setup.user_candidates:
            if len(shared.state.arms) >= plan.max_candidates:
                break
            self._add(candidate.instruction, "user", name=candidate.name)
        attempts = 0
        per_call = plan.candidates_per_call
        max_attempts = 3 * math.ceil(plan.initial_candidates / per_call) + 3
        while (
            self._first_batch_size() < plan.initial_candidates
            and attempts < max_attempts
            and not shared.activity.stop_requested
        ):
            wanted = plan.initial_candidates - self._first_batch_size()
            calls = min(math.ceil(wanted / per_call), max(1, shared.activity.concurrency))
            attempts += calls
            results: list[bool] = []
            async with anyio.create_task_group() as group:
                for _ in range(calls):
                    group.start_soon(self._propose_into, results)
            if not all(results):
                break

    def _first_batch_size(self) -> int:
        """The candidates that count against `initial_candidates`: all but the user's."""
        return sum(arm.origin != "user" for arm in self._shared.state.arms)

    async def _propose_into(self, results: list[bool]) -> None:
        proposer = self._shared.setup.proposer
        per_call = self._shared.setup.settings.proposals.candidates_per_call
        results.append(await self._call(lambda: proposer.propose(per_call)))

    # -- variant rounds --------------------------------------------------------------------------

    async def _round_is_due(self) -> bool:
        """Wait until the policy is done with the current pool or enough pulls came in; False
        when the study stops meanwhile."""
        shared = self._shared
        every = max(50, 4 * len(shared.state.arms))
        policy = shared.state.policy
        while not (
            policy.done() or policy.pulls_used - shared.activity.pulls_at_last_round >= every
        ):
            await shared.activity.changed.wait()
            if shared.activity.stop_requested:
                return False
        return True

    def _room_for_variants(self) -> bool:
        """Is there budget left for a round of variants (the share kept for them)?"""
        shared = self._shared
        limit = shared.state.budgets.limit("scoring_calls")
        if limit is None:
            return True
        return shared.state.spend.scoring_calls + shared.activity.scoring_in_flight < limit

    async def _variant_round(self) -> None:
        shared = self._shared
        shared.activity.round_in_flight = True  # the share stays kept until its calls are back
        try:
            kinds = await self._round_calls()
        finally:
            shared.activity.round_in_flight = False
        shared.activity.message = (
            f"variant round {shared.state.variant_rounds_done} ({', '.join(kinds)}): "
            f"{len(shared.state.arms)} candidates"
        )
        self._budget_changed()  # the share kept for the round is open

    async def _round_calls(self) -> Sequence[str]:
        """Start the next round and wait for its calls; the kinds of call it made."""
        shared = self._shared
        plan = shared.setup.settings.proposals
        number = shared.state.variant_rounds_done + 1
        shared.activity.pulls_at_last_round = shared.state.policy.pulls_used
        shared.emit(VariantRoundStarted(number=number))
        calls = round_calls(shared.state, shared.setup.splits.scoring, plan, number)
        kinds = sorted({call.kind for call in calls})
        kept = ""
        if shared.state.budgets.limit("scoring_calls") is not None:
            kept = f", {shared.state.share:.0%} of the scoring budget kept for their candidates"
        shared.activity.message = (
            f"variant round {number} ({', '.join(kinds)}): {len(calls)} proposal "
            f"call{'s' if len(calls) != 1 else ''} out{kept}"
        )
        # at most `concurrency` at once, as the first batch: an endpoint's connections are
        # that many, and a call queued for one longer than its timeout would fail
        slots = anyio.CapacityLimiter(max(1, shared.activity.concurrency))

        async def ask(call: VariantCall) -> None:
            async with slots:
                await self._call(self._asker(call))

        async with anyio.create_task_group() as group:
            for call in calls:
                group.start_soon(ask, call)
        if plan.demo_search:
            await self._demo_round(number)
        return kinds

    def _asker(self, call: VariantCall) -> Callable[[], Awaitable[ProposalBatch]]:
        """The proposer's method for one call of a round, with its arguments."""
        proposer = self._shared.setup.proposer
        first = call.parents[0]
        if call.kind == "resample":
            return lambda: proposer.vary(first.instruction, first.arm, call.n)
        if call.kind == "reflect":
            return lambda: proposer.reflect(first, call.evidence, call.n)
        second = call.parents[1]
        return lambda: proposer.merge(first, second, call.evidence, call.second_evidence, call.n)

    # -- the demo search ---------------------------------------------------------------------------

    async def _demo_round(self, number: int) -> None:
        """The round's demo sets for its leader (`engine.study.demos`), each a candidate."""
        shared = self._shared
        best = leaders(shared.state, 1)
        pool, k = shared.setup.splits.demo, shared.setup.scoring_demos
        if not best or not pool or k <= 0:
            return
        parent = shared.state.arms[best[0]]
        plan = round_plan(parent.index, pool, k, shared.setup.settings.proposals.demo_sets, number)
        sets = [demos for _, demos in plan.sets]
        if plan.bootstrap is not None:
            right = await self._bootstrap(parent.instruction, parent.demos, plan.bootstrap)
            if right:
                sets.append(right_set(right, k))
        for demos in sets:
            if demos and len(shared.state.arms) < shared.setup.settings.proposals.max_candidates:
                self._add_demos(parent.instruction, parent.index, demos)

    async def _bootstrap(
        self, instruction: str, own: tuple[int, ...] | None, bootstrap: Bootstrap
    ) -> dict[int, float]:
        """The leader's rewards on a few demo-pool examples (for the set of those it answers
        right); the calls count as proposal calls of kind "demos"."""
        shared = self._shared
        if not shared.state.budgets.allows_proposal_call(
            shared.state.spend, shared.activity.proposals_in_flight
        ):
            return {}
        scorer, demos = shared.setup.scorer, demo_set(shared, own)
        scores: dict[int, Score] = {}

        async def one(index: int) -> None:
            example = shared.setup.splits.demo[index]
            try:
                scores[index] = await (
                    scorer.score(instruction, example)
                    if demos is None
                    else scorer.score(instruction, example, demos)
                )
            except EndpointError as error:
                self._failed(error, "proposal", isinstance(error, STOPS_STUDY))

        shared.activity.proposals_in_flight += 1
        try:
            async with anyio.create_task_group() as group:
                for index in bootstrap.examples:
                    group.start_soon(one, index)
        finally:
            shared.activity.proposals_in_flight -= 1
        tried = [scores[i] for i in bootstrap.examples if i in scores]
        prices, model = shared.setup.prices, shared.setup.scoring_model
        shared.emit(
            ProposalsDone(
                calls=len(tried),
                prompt_tokens=sum(s.prompt_tokens for s in tried),
                completion_tokens=sum(s.completion_tokens for s in tried),
                usd=sum(s.usd(prices, model) for s in tried),
                cached_calls=sum(s.cached for s in tried),
                generated=int(any(s.reward > 0 for s in tried)),
                model=model,
                proposal_kind="demos",
                latency_s=min(sum(s.latency_s for s in tried), 1e9),
            )
        )
        return {i: scores[i].reward for i in bootstrap.examples if i in scores}

    def _add_demos(self, instruction: str, parent: int, demos: tuple[int, ...]) -> None:
        shared = self._shared
        if prompt_key(instruction, demos) in shared.state.prompts:
            return
        shared.emit(
            CandidateAdded(
                arm=len(shared.state.arms),
                instruction=instruction,
                origin="demos",
                parents=[parent],
                demos=list(demos),
            )
        )
        shared.activity.notify()

    # -- calls and candidates --------------------------------------------------------------------

    async def _call(self, call: Callable[[], Awaitable[ProposalBatch]]) -> bool:
        """One proposal call under the proposal budget; False when no more calls should be made
        (budget, quota)."""
        shared = self._shared
        activity = shared.activity
        if not shared.state.budgets.allows_proposal_call(
            shared.state.spend, activity.proposals_in_flight
        ):
            return False
        activity.proposals_in_flight += 1
        try:
            batch = await call()
        except EndpointError as error:
            fatal = isinstance(error, STOPS_STUDY)
            self._failed(error, "proposal", fatal)
            return not fatal and not activity.stop_requested
        finally:
            activity.proposals_in_flight -= 1
        self._take(batch)
        return True

    def _take(self, batch: ProposalBatch) -> None:
        """Record what the calls cost, then add the proposals the study does not have yet."""
        shared = self._shared
        plan = shared.setup.settings.proposals
        fresh: list[Proposal] = []
        seen: set[str] = set()
        for proposal in batch.proposals:
            key = instruction_key(proposal.text)
            copy = not key or key in shared.state.keys or key in seen
            if not copy and len(shared.state.arms) + len(fresh) < plan.max_candidates:
                fresh.append(proposal)
                seen.add(key)
        usd = shared.setup.prices.cost(batch.model, batch.prompt_tokens, batch.completion_tokens)
        plan_chars = shared.setup.settings.answer_chars
        shared.emit(
            ProposalsDone(
                calls=batch.calls,
                prompt_tokens=batch.prompt_tokens,
                completion_tokens=batch.completion_tokens,
                usd=usd,
                cached_calls=batch.cached_calls,
                generated=batch.generated or len(batch.proposals),
                duplicates=batch.duplicates + len(batch.proposals) - len(fresh),
                rejected=batch.rejected,
                model=batch.model,
                raw=[text[:plan_chars] for text in batch.raw] if plan_chars else [],
                reasons=dict(batch.reasons),
                proposal_kind=batch.kind if batch.kind in _CALL_KINDS else None,  # type: ignore[arg-type]
                latency_s=min(max(batch.latency_s, 0.0), 1e9),
            )
        )
        for proposal in fresh:
            self._add(proposal.text, proposal.origin, proposal.parents)

    def _add(
        self, instruction: str, origin: str, parents: tuple[int, ...] = (), name: str = ""
    ) -> None:
        shared = self._shared
        if shared.state.knows(instruction):
            return
        shared.emit(
            CandidateAdded(
                arm=len(shared.state.arms),
                instruction=instruction,
                origin=origin,  # type: ignore[arg-type]
                parents=list(parents),
                name=name,
            )
        )
        shared.activity.notify()
