"""The study: propose candidates, score them with a bandit policy, evaluate the winner.

One anyio task group holds everything that runs: a fixed pool of dispatcher workers (as many as
the concurrency setting), one proposer task and one monitor task. A worker asks the policy for a
pull whenever it is free, so the calls in flight are bounded by the concurrency, never by the
number of candidates. A call that fails for good is cancelled in the policy (its example goes
back to the pool; it is never scored as 0), counted, and published; the study stops with a clear
message when failures pass the threshold. The proposer adds an initial batch, then variants of
the current leaders (iterative APE) while scoring runs, keeping a share of the scoring budget for
them. The study stops at the first budget reached, when the policy's stopping rule holds and no
more proposals are due, on cancel, or on too many failures; it cancels what is in flight and
evaluates the winner, the runner-up and the human instruction on the held-out test pool.
Reference: DESIGN.md sections 1-3 and 5; APE (Zhou et al., ICLR 2023), section 3.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from engine.errors import ConfigError, EndpointError, EngineError
from engine.llm.errors import QuotaExceededError
from engine.llm.gate import SEND_GATE, CallHeldBack, SendGate
from engine.study.budgets import BUDGET_NAMES, BudgetName, Budgets, Spend
from engine.study.evaluation import Evaluation, evaluate_instructions
from engine.study.events import (
    ArmEliminated,
    BudgetChanged,
    CandidateAdded,
    ErrorEvent,
    EventBus,
    LeaderChanged,
    PullDone,
    StudyFinished,
)
from engine.study.interfaces import ProposalBatch, PullLike
from engine.study.parts import Arm, CallRate, RestoredState, StudyParts, UiHook
from engine.study.result import CandidateResult, StudyResult
from engine.study.snapshot import (
    ArmRow,
    LimiterRow,
    ProposalRow,
    StudySnapshot,
    ThroughputRow,
)

if TYPE_CHECKING:  # the study core does not import the composition layer at run time
    from engine.study.config import StudyConfig

__all__ = ["Study"]

_TICK_S = 0.1


class Study:
    """One study; implements `engine.study.snapshot.StudyControl`. Run it with `await run()`."""

    def __init__(
        self,
        config: StudyConfig,
        parts: StudyParts,
        *,
        events: EventBus | None = None,
        ui: UiHook | None = None,
        study_id: str | None = None,
    ) -> None:
        self.config = config
        self.parts = parts
        self.events = events or EventBus()
        self.ui = ui
        self.study_id = study_id or uuid.uuid4().hex[:12]
        self.budgets = Budgets(config.budget_limits())
        self.spend = Spend()
        self.arms: list[Arm] = []
        self._texts: set[str] = set()
        self._policy = parts.policy
        self._time_s = parts.time_s
        self._concurrency = config.concurrency
        self._share = config.new_candidate_share
        self._status = "starting"
        self._reason = ""
        self._message = ""
        self._paused = False
        self._stop_requested = False
        self._changed = anyio.Event()
        self._in_flight = 0
        self._proposal_in_flight = 0
        self._proposer_idle = False
        self._initial_done = False
        self._variant_rounds_done = 0
        self._pulls_at_last_round = 0
        self._variant_arms: set[int] = set()
        self._failures = 0
        self._failure_kinds: dict[str, int] = {}
        self._fatal: str | None = None
        self._workers = 0
        self._task_group: TaskGroup | None = None
        self._started_at = 0.0
        self._seconds_before = 0.0
        self._leader: int | None = None
        self._states: dict[int, str] = {}
        self._dropped: set[int] = set()
        self._completed = CallRate(self._time_s)
        self._generated = 0
        self._duplicates = 0
        self._rejected = 0
        self._evaluations: tuple[Evaluation, ...] = ()
        self._evaluation_done = 0
        self._evaluation_total = 0
        self._gate = SendGate()  # shut while paused: scoring calls not yet sent come back
        self._restore(parts.restored)

    # -- restoring from a journal --------------------------------------------------------------

    def _restore(self, restored: RestoredState | None) -> None:
        if restored is None:
            return
        for arm in restored.arms:
            self._add_arm(arm.instruction, arm.origin, arm.parent, record=False)
        for arm_index, example, reward in restored.observations:
            self._policy.record(arm_index, example, reward)
        for arm_index in restored.dropped:
            self._policy.drop(arm_index)
            self._dropped.add(arm_index)
        for name, limit in restored.budgets.items():
            self.budgets.set(name, limit)
        self.spend = restored.spend
        self._seconds_before = restored.spend.seconds
        self._variant_rounds_done = restored.variant_rounds_done
        self._initial_done = len(self.arms) >= self.config.initial_candidates
        self._pulls_at_last_round = self._policy.pulls_used

    # -- StudyControl ----------------------------------------------------------------------------

    def snapshot(self) -> StudySnapshot:
        return self._snapshot()

    def set_concurrency(self, concurrency: int) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency: must be an integer >= 1 (got {concurrency!r})")
        self._concurrency = concurrency
        for client in self.parts.clients:
            client.reconfigure(concurrency=concurrency)
        self._spawn_workers()
        self._notify()

    def set_rate_limits(
        self, *, requests_per_minute: float | None, tokens_per_minute: float | None
    ) -> None:
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{name}: must be a positive number or None (got {value!r})")
        for client in self.parts.clients:
            client.reconfigure(
                requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute
            )
        self._notify()

    def set_budget(self, name: str, limit: float | None) -> None:
        previous = self.budgets.set(name, limit)
        if self.parts.recorder is not None:
            self.parts.recorder.budget(name, limit)
        self._sync_policy_budget()
        self.events.publish(BudgetChanged(name, limit, previous))
        self._message = f"budget {name} set to {'unlimited' if limit is None else limit}"
        self._notify()

    def set_new_candidate_share(self, share: float) -> None:
        if not isinstance(share, int | float) or not 0 <= share < 1:
            raise ConfigError(f"new_candidate_share: must be in [0, 1) (got {share!r})")
        self._share = float(share)
        self._sync_policy_budget()
        self._notify()

    def pause(self) -> None:
        if self._status == "running":
            self._paused = True
            self._gate.shut()  # calls queued at the limiter come back too, not only new pulls
            self._status = "paused"
            self._message = "paused"

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._gate.open()
            self._status = "running"
            self._message = "resumed"
            self._notify()

    def drop_arm(self, arm: int) -> None:
        if not 0 <= arm < len(self.arms):
            raise ConfigError(f"drop_arm: no candidate {arm} (there are {len(self.arms)})")
        if arm in self._dropped:
            return
        self._policy.drop(arm)
        self._dropped.add(arm)
        if self.parts.recorder is not None:
            self.parts.recorder.drop(arm)
        self._message = f"candidate {arm} dropped"
        self._notify()

    def cancel(self, reason: str = "cancelled by the user") -> None:
        self._stop("cancelled", reason)

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> StudyResult:
        """Run the study to its end and return the result (also written to the journal)."""
        self._started_at = self._time_s()
        self._status = "running"
        if self.ui is not None:
            self.ui.attach(self)
        self._sync_policy_budget()
        try:
            async with anyio.create_task_group() as group:
                self._task_group = group
                group.start_soon(self._monitor, group)
                group.start_soon(self._propose_loop)
                self._spawn_workers()
        finally:
            self._task_group = None
            self.spend.seconds = self._seconds_before + (self._time_s() - self._started_at)
        if self._status not in ("failed", "cancelled"):
            self._status = "stopping"
            self._message = "evaluating the winner on the test pool"
            self._publish_ui()
            async with anyio.create_task_group() as group:
                group.start_soon(self._evaluation_ticker)  # the UI keeps moving meanwhile
                await self._final_evaluation()
                group.cancel_scope.cancel()
            self._status = "finished"
            self._message = f"finished: {self._reason}" if self._reason else "finished"
        self.spend.seconds = self._seconds_before + (self._time_s() - self._started_at)
        result = self._result()
        if self.parts.recorder is not None:
            self.parts.recorder.progress(self.spend)
            self.parts.recorder.result(result.to_json())
        self.events.publish(StudyFinished(self._status, self._reason, result.winner_arm))
        self._publish_ui()
        return result

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _stop(self, status: str, reason: str) -> None:
        if self._stop_requested:
            return
        self._stop_requested = True
        self._gate.open()
        if status in ("failed", "cancelled"):
            self._status = status
        self._reason = reason
        self._message = reason
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
        self._notify()

    def _stopping(self) -> bool:
        return self._stop_requested

    def _spawn_workers(self) -> None:
        group = self._task_group
        if group is None:
            return
        while self._workers < self._concurrency:
            group.start_soon(self._worker, self._workers)
            self._workers += 1

    # -- the dispatcher --------------------------------------------------------------------------

    def _scoring_limit(self) -> float | None:
        """The scoring-call budget open to the current pool: while variant rounds are due, a
        share of it is kept for the candidates still to come."""
        limit = self.budgets.limit("scoring_calls")
        if limit is None:
            return None
        if self._variants_due():
            return limit * (1.0 - self._share)
        return limit

    def _sync_policy_budget(self) -> None:
        limit = self._scoring_limit()
        self._policy.set_budget(None if limit is None else int(limit))

    def _variants_due(self) -> bool:
        return (
            self._variant_rounds_done < self.config.variant_rounds
            and len(self.arms) < self.config.max_candidates
            and not self._proposer_idle
        )

    def _next_pull(self) -> PullLike | None:
        if self._paused or self._stop_requested:
            return None
        limit = self._scoring_limit()
        if limit is not None and self.spend.scoring_calls + self._in_flight >= limit:
            return None
        if self.budgets.reached(self.spend) is not None:
            return None
        pulls = self._policy.select(1)
        return pulls[0] if pulls else None

    async def _worker(self, index: int) -> None:
        SEND_GATE.set(self._gate)  # this task's calls (its own context) obey pause
        while not self._stop_requested:
            if index >= self._concurrency:
                await self._changed.wait()
                continue
            pull = self._next_pull()
            if pull is None:
                await self._changed.wait()
                continue
            await self._run_pull(pull)

    async def _run_pull(self, pull: PullLike) -> None:
        arm = self.arms[pull.arm]
        example = self.parts.splits.scoring[pull.example]
        self._in_flight += 1
        settled = False
        try:
            score = await self.parts.scorer.score(arm.instruction, example)
            settled = True
        except CallHeldBack:  # paused before it was sent: the pull goes back, nothing was paid
            self._policy.cancel(pull)
            settled = True
            return
        except QuotaExceededError as error:
            self._policy.cancel(pull)
            settled = True
            self._count_failure(error, fatal=True)
            return
        except EndpointError as error:
            self._policy.cancel(pull)
            settled = True
            self._count_failure(error)
            return
        finally:
            self._in_flight -= 1
            if not settled:  # cancelled while in flight: the pull goes back to the pool
                self._policy.cancel(pull)
            self._notify()
        reward = min(1.0, max(0.0, float(score.reward)))
        self._policy.observe(pull, reward)
        usd = self.parts.prices.cost(
            score.model or self.parts.scoring_model, score.prompt_tokens, score.completion_tokens
        )
        self.spend.add_call(
            "scoring",
            prompt_tokens=score.prompt_tokens,
            completion_tokens=score.completion_tokens,
            usd=usd,
            cached=score.cached,
        )
        self._completed.add()
        if self.parts.recorder is not None:
            self.parts.recorder.observation(
                pull.arm,
                pull.example,
                reward,
                score.prompt_tokens,
                score.completion_tokens,
                0.0 if score.cached else usd,
                score.latency_s,
                score.cached,
            )
        self.events.publish(
            PullDone(
                pull.arm,
                pull.example,
                reward,
                score.prompt_tokens + score.completion_tokens,
                score.latency_s,
                score.cached,
            )
        )

    def _count_failure(self, error: EndpointError, *, fatal: bool = False) -> None:
        self._failures += 1
        self.spend.failed_calls += 1
        kind = getattr(error, "kind", type(error).__name__)
        self._failure_kinds[kind] = self._failure_kinds.get(kind, 0) + 1
        message = f"call failed for good ({kind}): {error}"
        self._message = message
        if self.parts.recorder is not None:
            self.parts.recorder.failure(kind, message)
        self.events.publish(ErrorEvent(message, kind, self._failures))
        calls = self.spend.scoring_calls + self.spend.proposal_calls + self._failures
        threshold = max(self.config.max_failures, self.config.max_failure_share * calls)
        if fatal:
            self._fatal = f"stopped: {error}"
            self._stop("failed", self._fatal)
        elif self._failures > threshold:
            kinds = ", ".join(f"{k} x {v}" for k, v in sorted(self._failure_kinds.items()))
            self._fatal = (
                f"stopped: {self._failures} calls failed for good ({kinds}), more than the "
                f"threshold of {threshold:.0f} (max_failures={self.config.max_failures}, "
                f"max_failure_share={self.config.max_failure_share}); last error: {error}. "
                "Check the endpoint, then resume from the journal"
            )
            self._stop("failed", self._fatal)

    # -- the proposer --------------------------------------------------------------------------

    def _add_arm(
        self, instruction: str, origin: str, parent: int | None, *, record: bool = True
    ) -> int | None:
        key = " ".join(instruction.split()).lower()
        if not key or key in self._texts or len(self.arms) >= self.config.max_candidates:
            self._duplicates += bool(key) and key in self._texts
            return None
        self._texts.add(key)
        index = self._policy.add_arm()
        if index != len(self.arms):
            raise EngineError(
                f"the policy numbered a new arm {index}, the study expected {len(self.arms)}"
            )
        self.arms.append(Arm(index, instruction, origin, parent))
        if origin == "variant":
            self._variant_arms.add(index)
        if record and self.parts.recorder is not None:
            self.parts.recorder.candidate(index, instruction, origin, parent)
        self.events.publish(CandidateAdded(index, instruction, origin, parent))
        self._notify()
        return index

    def _take_batch(self, batch: ProposalBatch) -> int:
        usd = self.parts.prices.cost(batch.model, batch.prompt_tokens, batch.completion_tokens)
        paid = batch.calls - batch.cached_calls
        self.spend.proposal_calls += batch.calls
        self.spend.cached_calls += batch.cached_calls
        if paid > 0:
            self.spend.tokens += batch.prompt_tokens + batch.completion_tokens
            self.spend.usd += usd
        if self.parts.recorder is not None:
            self.parts.recorder.proposals(
                batch.calls, batch.prompt_tokens + batch.completion_tokens, usd, batch.cached_calls
            )
        self._generated += batch.generated or len(batch.proposals)
        self._duplicates += batch.duplicates
        self._rejected += batch.rejected
        added = 0
        for proposal in batch.proposals:
            if self._add_arm(proposal.text, proposal.origin, proposal.parent) is not None:
                added += 1
        return added

    async def _propose_call(self, call: Callable[[], Any]) -> bool:
        """One proposal call under the proposal budget; False when the budget says no more."""
        if not self.budgets.allows_proposal_call(self.spend, self._proposal_in_flight):
            return False
        self._proposal_in_flight += 1
        try:
            batch = await call()
        except QuotaExceededError as error:
            self._count_failure(error, fatal=True)
            return False
        except EndpointError as error:
            self._count_failure(error)
            return not self._stop_requested
        finally:
            self._proposal_in_flight -= 1
        self._take_batch(batch)
        return True

    async def _propose_loop(self) -> None:
        config = self.config
        if self.parts.task.human_instruction and config.include_human and not self.arms:
            self._add_arm(self.parts.task.human_instruction, "human", None)
        attempts = 0
        max_attempts = 3 * math.ceil(config.initial_candidates / config.candidates_per_call) + 3
        while (
            len(self.arms) < config.initial_candidates
            and attempts < max_attempts
            and not self._stop_requested
        ):
            wanted = config.initial_candidates - len(self.arms)
            calls = min(math.ceil(wanted / config.candidates_per_call), max(1, self._concurrency))
            attempts += calls
            keep_going = True

            async def one(count: int) -> None:
                nonlocal keep_going
                ok = await self._propose_call(lambda: self.parts.proposer.propose(count))
                keep_going = keep_going and ok

            async with anyio.create_task_group() as group:
                for _ in range(calls):
                    group.start_soon(one, config.candidates_per_call)
            if not keep_going:
                break
        self._initial_done = True
        if not self.arms:
            self._stop("failed", "no candidate instruction could be proposed; see the errors above")
            return
        self._sync_policy_budget()
        self._notify()
        while self._variants_due() and not self._stop_requested:
            every = max(50, 4 * len(self.arms))
            while not (
                self._policy.done() or self._policy.pulls_used - self._pulls_at_last_round >= every
            ):
                await self._changed.wait()
                if self._stopping():
                    return
            if not self._variant_room():
                break
            leaders = self._leaders(config.variant_leaders)
            self._variant_rounds_done += 1
            self._pulls_at_last_round = self._policy.pulls_used
            if self.parts.recorder is not None:
                self.parts.recorder.variant_round(self._variant_rounds_done)
            async with anyio.create_task_group() as group:
                for leader in leaders:
                    arm = self.arms[leader]
                    group.start_soon(
                        self._propose_call,
                        lambda arm=arm: self.parts.proposer.vary(
                            arm.instruction, arm.index, config.variants_per_leader
                        ),
                    )
            self._message = (
                f"variant round {self._variant_rounds_done}: {len(self.arms)} candidates"
            )
            self._sync_policy_budget()
            self._notify()
        self._proposer_idle = True
        self._sync_policy_budget()
        self._notify()

    def _variant_room(self) -> bool:
        """Is there budget left for a round of variants (the share kept for them)?"""
        limit = self.budgets.limit("scoring_calls")
        if limit is None:
            return True
        return self.spend.scoring_calls + self._in_flight < limit

    def _leaders(self, count: int) -> list[int]:
        ranked = []
        for arm in self.arms:
            if arm.index in self._dropped:
                continue
            stats = self._policy.stats(arm.index)
            if stats.count == 0 or stats.state in ("eliminated", "dropped"):
                continue
            ranked.append((stats.mean, stats.count, -arm.index, arm.index))
        ranked.sort(reverse=True)
        return [item[3] for item in ranked[:count]]

    # -- the monitor ---------------------------------------------------------------------------

    async def _monitor(self, group: TaskGroup) -> None:
        last_progress = self._time_s()
        while True:
            await anyio.sleep(_TICK_S)
            now = self._time_s()
            self._track_arms()
            self._tick()
            if self.parts.recorder is not None and now - last_progress >= 1.0:
                self.parts.recorder.progress(self.spend)
                last_progress = now
            reason = self._stop_reason()
            if reason is not None:
                self._stop("stopping", reason)
                return

    def _stop_reason(self) -> str | None:
        if self._stop_requested:
            return self._reason
        reached = self.budgets.reached(self.spend)
        if reached is not None:
            return f"budget {reached} reached ({self._budget_text(reached)})"
        if not self._initial_done or self._paused:
            return None
        limit = self._scoring_limit()
        spent_all = limit is not None and self.spend.scoring_calls >= limit
        idle = self._in_flight == 0 and self._proposal_in_flight == 0
        if not idle:
            return None
        proposals_pending = self._variants_due() and self._variant_room()
        if proposals_pending:
            return None
        if self._policy.done():
            return "the policy's stopping rule holds: the winner is identified"
        if spent_all:
            return f"budget scoring_calls reached ({self._budget_text('scoring_calls')})"
        pulls = self._policy.select(1)  # idle but not done: is there anything left to pull?
        if not pulls:
            return "the policy has no pull left to give (every candidate is settled)"
        for pull in pulls:
            self._policy.cancel(pull)
        self._notify()
        return None

    def _budget_text(self, name: BudgetName) -> str:
        limit = self.budgets.limit(name)
        return f"{self.spend.value(name):g} of {limit:g}" if limit is not None else ""

    def _track_arms(self) -> None:
        for arm in self.arms:
            state = self._arm_state(arm.index)
            before = self._states.get(arm.index)
            if state == "eliminated" and before != "eliminated":
                self.events.publish(ArmEliminated(arm.index, self._policy.stats(arm.index).upper))
            self._states[arm.index] = state
        leader = self._policy.recommendation()
        if leader is not None and leader != self._leader:
            self.events.publish(
                LeaderChanged(leader, self._leader, self._policy.stats(leader).mean)
            )
            self._leader = leader

    def _arm_state(self, arm: int) -> str:
        if arm in self._dropped:
            return "dropped"
        state = self._policy.stats(arm).state
        return (
            state
            if state in ("leader", "active", "eliminated", "complete", "dropped")
            else "active"
        )

    def _tick(self) -> None:
        """The study's clock and the UI, brought up to date."""
        self.spend.seconds = self._seconds_before + (self._time_s() - self._started_at)
        self._publish_ui()

    def _publish_ui(self) -> None:
        if self.ui is not None:
            self.ui.update(self._snapshot())

    # -- snapshot ------------------------------------------------------------------------------

    def _snapshot(self) -> StudySnapshot:
        n = len(self.parts.splits.scoring)
        leader = self._policy.recommendation() if self.arms else None
        rows = []
        for arm in self.arms:
            stats = self._policy.stats(arm.index)
            state = self._arm_state(arm.index)
            if arm.index == leader and state not in ("dropped", "eliminated"):
                state = "leader"
            rows.append(
                ArmRow(
                    arm=arm.index,
                    instruction=arm.instruction,
                    mean=float(stats.mean),
                    lower=float(stats.lower),
                    upper=float(stats.upper),
                    pulls=int(stats.count),
                    pending=int(stats.pending),
                    n=n,
                    state=state,  # type: ignore[arg-type]
                    origin=arm.origin,
                    parent=arm.parent,
                )
            )
        retries = rate_limited = 0
        p50 = p95 = 0.0
        limiters = []
        for client in self.parts.clients:
            stats_now = client.stats()
            retries += stats_now.retries
            rate_limited += stats_now.rate_limited
            p50 = max(p50, stats_now.latency_p50_s)
            p95 = max(p95, stats_now.latency_p95_s)
            reading = client.limiter.reading()
            limiters.append(
                LimiterRow(
                    client.name,
                    reading.requests_per_minute,
                    reading.tokens_per_minute,
                    reading.request_fill,
                    reading.token_fill,
                    reading.adaptive,
                )
            )
        rate = self._completed.rate()
        eta: float | None = None
        limit = self.budgets.limit("scoring_calls")
        if limit is not None and rate > 0:
            eta = max(0.0, (limit - self.spend.scoring_calls) / rate)
        elapsed = self.spend.seconds
        return StudySnapshot(
            study_id=self.study_id,
            task=self.parts.task.name,
            policy=self.config.policy,
            status=self._status,  # type: ignore[arg-type]
            elapsed_s=elapsed,
            eta_s=eta,
            n=n,
            arms=tuple(rows),
            throughput=ThroughputRow(
                calls_per_s=rate,
                recent_calls_per_s=self._completed.per_second(),
                latency_p50_s=p50,
                latency_p95_s=p95,
                in_flight=self._in_flight + self._proposal_in_flight,
                concurrency=self._concurrency,
                retries=retries,
                rate_limited=rate_limited,
                errors=self._failures,
            ),
            limiters=tuple(limiters),
            budgets=self.budgets.rows(self.spend),
            proposals=ProposalRow(
                generated=self._generated,
                kept=len(self.arms),
                duplicates=self._duplicates,
                rejected=self._rejected,
                waiting=self._proposal_in_flight,
                new_candidate_share=self._share,
            ),
            message=self._message,
            done=self._status in ("finished", "failed", "cancelled"),
            winner=leader,
            extra={"spend": self.spend.to_json(), "reason": self._reason},
        )

    # -- the end -------------------------------------------------------------------------------

    def _ranked(self) -> list[int]:
        """Arms by the policy's recommendation first, then by mean (pulled arms only)."""
        order: list[int] = []
        winner = self._policy.recommendation()
        if winner is not None and winner not in self._dropped:
            order.append(winner)
        rest = [
            (self._policy.stats(arm.index).mean, arm.index)
            for arm in self.arms
            if arm.index != winner
            and arm.index not in self._dropped
            and self._policy.stats(arm.index).count > 0
        ]
        rest.sort(key=lambda item: (-item[0], item[1]))
        order.extend(index for _, index in rest)
        return order

    async def _final_evaluation(self) -> None:
        ranked = self._ranked()
        targets: list[tuple[str, str]] = [
            ("winner", self.arms[i].instruction) for i in ranked[:1]
        ] + [("runner_up", self.arms[i].instruction) for i in ranked[1:2]]
        human = self.parts.task.human_instruction
        if human:
            targets.append(("human", human))
        if not targets or not self.parts.splits.test:
            return
        self._evaluation_total = len(targets) * len(self.parts.splits.test)
        self._evaluations = await evaluate_instructions(
            targets,
            self.parts.splits.test,
            self.parts.scorer,
            concurrency=self._concurrency,
            on_score=self._on_evaluation_score,
        )

    async def _evaluation_ticker(self) -> None:
        while True:
            await anyio.sleep(_TICK_S)
            self._tick()

    def _on_evaluation_score(self, score: Any) -> None:
        self._evaluation_done += 1
        self._message = (
            f"evaluating the winner on the test pool: {self._evaluation_done} of "
            f"{self._evaluation_total} calls"
        )
        usd = self.parts.prices.cost(
            score.model or self.parts.scoring_model, score.prompt_tokens, score.completion_tokens
        )
        self.spend.add_call(
            "evaluation",
            prompt_tokens=score.prompt_tokens,
            completion_tokens=score.completion_tokens,
            usd=usd,
            cached=score.cached,
        )

    def _result(self) -> StudyResult:
        ranked = self._ranked()
        winner = ranked[0] if ranked else None
        runner_up = ranked[1] if len(ranked) > 1 else None
        by_role = {evaluation.role: evaluation for evaluation in self._evaluations}
        candidates = []
        for arm in self.arms:
            stats = self._policy.stats(arm.index)
            candidates.append(
                CandidateResult(
                    arm=arm.index,
                    instruction=arm.instruction,
                    origin=arm.origin,
                    parent=arm.parent,
                    mean=float(stats.mean),
                    lower=float(stats.lower),
                    upper=float(stats.upper),
                    pulls=int(stats.count),
                    state=self._arm_state(arm.index),
                )
            )
        n = len(self.parts.splits.scoring)
        return StudyResult(
            study_id=self.study_id,
            task=self.parts.task.name,
            policy=self.config.policy,
            status=self._status,
            reason=self._reason,
            n=n,
            winner_arm=winner,
            runner_up_arm=runner_up,
            winner=by_role.get("winner"),
            runner_up=by_role.get("runner_up"),
            human=by_role.get("human"),
            candidates=tuple(candidates),
            spend=Spend.from_json(self.spend.to_json()),
            full_evaluation_calls=len(self.arms) * n,
            failures=dict(self._failure_kinds),
            error=self._fatal,
        )

    @property
    def status(self) -> str:
        return self._status

    def budget_names(self) -> tuple[str, ...]:
        return BUDGET_NAMES

    def arm_instructions(self) -> Sequence[str]:
        return [arm.instruction for arm in self.arms]
