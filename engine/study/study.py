"""The study: propose candidates, score them with a bandit policy, evaluate the winner.

`Study` is a facade over one shared state (docs/design.md, "The study"): it keeps the controls
(`StudyControl`: concurrency, rate limits, budgets, pause, drop, cancel) and `run()`, and
delegates the work to the parts beside it -- the dispatcher (`engine.study.dispatch`), the
proposal loop (`engine.study.proposing`), the monitor (`engine.study.monitor`), the final
evaluation and the views. Every change is an event (`engine.study.events`): `emit` applies it
to the state, then hands it to each observer in order (the journal writer first, when there is
one). A study built with `history` (a journal's events) applies them before it runs, so a
resumed study starts where the journal ends and pays for nothing twice.

The study stops at the first budget reached, when the policy's stopping rule holds and no more
proposals are due, on cancel, or when more calls failed for good than its threshold; it cancels
what is in flight and evaluates the winner, the runner-up and the human instruction on the
held-out test pool. When its journal cannot be written (a full disk), it stops at once, makes no
further call, and `run()` raises that `JournalError`: the journal, whole up to its last line,
resumes once the cause is fixed. The same when the user's own metric or scorer fails (a
`ScorerError`, never counted as a failed call): at the first example, `run()` raises it.
Reference: APE (Zhou et al., ICLR 2023), section 3.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable

import anyio

from engine.errors import ConfigError, EndpointError, EngineError, JournalError, ScorerError
from engine.llm.errors import unfixable
from engine.study import views
from engine.study.activity import Activity
from engine.study.budgets import check_limit
from engine.study.dispatch import Dispatcher
from engine.study.evaluation import Evaluation, FinalEvaluation, Target
from engine.study.events import (
    ArmDropped,
    BudgetChanged,
    CallFailed,
    CandidateAdded,
    Event,
    ShareChanged,
    StatusChanged,
    StudyFinished,
    StudyResumed,
    StudyStarted,
    StudyStatus,
    VariantRoundStarted,
)
from engine.study.learning import recent_examples, warn_nothing_learned
from engine.study.monitor import Monitor
from engine.study.observers import Observer
from engine.study.proposing import ProposalLoop, scoring_limit
from engine.study.result import StudyResult
from engine.study.shared import Shared, StudySetup
from engine.study.snapshot import StudySnapshot
from engine.study.state import Arm, StudyState

__all__ = ["Study"]

_BUDGET_EVENTS = (CandidateAdded, BudgetChanged, ShareChanged, VariantRoundStarted)


class Study:
    """One study; implements `engine.study.snapshot.StudyControl`. Run it with `await run()`."""

    def __init__(
        self,
        setup: StudySetup,
        *,
        study_id: str | None = None,
        history: Iterable[Event] = (),
        observers: Iterable[Observer] = (),
        started: StudyStarted | None = None,
    ) -> None:
        self.setup = setup
        state = StudyState(setup.settings, setup.policy)
        for event in history:
            state.apply(event)
        self._resumed = bool(state.study_id)
        first = started.study_id if started is not None else state.study_id
        self.study_id = study_id or first or uuid.uuid4().hex[:12]
        self.observers: list[Observer] = list(observers)
        activity = Activity(setup.settings.throughput.concurrency, time_s=setup.time_s)
        activity.seconds_before = state.spend.seconds
        activity.initial_done = len(state.arms) >= setup.settings.proposals.initial_candidates
        activity.pulls_at_last_round = setup.policy.pulls_used
        self._shared = Shared(setup, state, activity, self._emit)
        self._dispatcher = Dispatcher(self._shared, self._call_failed)
        self._proposals = ProposalLoop(self._shared, self._call_failed, self._sync_budget)
        self._monitor = Monitor(self._shared, self._stop)
        self._scope: anyio.CancelScope | None = None
        self._evaluation_scope: anyio.CancelScope | None = None
        self._halted: EngineError | None = None  # what stopped the study at once
        if started is not None:  # the journal's first line, before any change
            self._emit(started)
        elif self._resumed:
            self._emit(StudyResumed(at=time.time()))

    # -- read-outs -------------------------------------------------------------------------------

    @property
    def state(self) -> StudyState:
        return self._shared.state

    @property
    def status(self) -> StudyStatus:
        return self._shared.state.status

    @property
    def arms(self) -> list[Arm]:
        return self._shared.state.arms

    def snapshot(self) -> StudySnapshot:
        return views.snapshot(self._shared, self.study_id)

    # -- StudyControl ------------------------------------------------------------------------------

    def set_concurrency(self, concurrency: int) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency: must be an integer >= 1 (got {concurrency!r})")
        self._shared.activity.capacity.total_tokens = concurrency
        self._dispatcher.grow()
        for client in self.setup.clients:
            client.resize(concurrency)  # the connection pool follows; the limiter has no cap
        self._say(f"concurrency set to {concurrency}")

    def set_rate_limits(
        self,
        *,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        endpoint: str | None = None,
    ) -> None:
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{name}: must be a positive number or None (got {value!r})")
        clients = [c for c in self.setup.clients if endpoint is None or c.name == endpoint]
        if not clients:
            names = ", ".join(client.name for client in self.setup.clients) or "none"
            raise ConfigError(f"endpoint: the study has no endpoint {endpoint!r} ({names})")
        for client in clients:
            client.reconfigure(
                requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute
            )
        self._say("rate limits changed" + (f" on {endpoint}" if endpoint else ""))

    def set_budget(self, name: str, limit: float | None) -> None:
        value = check_limit(name, limit)
        previous = self.state.budgets.limits[name]
        self._emit(BudgetChanged(name=name, limit=value, previous=previous))  # type: ignore[arg-type]
        self._say(f"budget {name} set to {'unlimited' if value is None else f'{value:g}'}")

    def set_new_candidate_share(self, share: float) -> None:
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
            raise ConfigError(f"new_candidate_share: must be in [0, 1) (got {share!r})")
        self._emit(ShareChanged(share=float(share)))
        self._say(f"new candidates keep {share:.0%} of the scoring budget")

    def pause(self) -> None:
        activity = self._shared.activity
        if activity.started_at is None:  # not running yet: it starts paused
            activity.start_paused = True
            activity.gate.shut()
        elif self.status == "running":
            activity.gate.shut()  # calls queued at the limiter come back too
            self._emit(StatusChanged(status="paused"))
            self._say("paused")

    def resume(self) -> None:
        activity = self._shared.activity
        if activity.started_at is None:
            activity.start_paused = False
            activity.gate.open()
        elif self.status == "paused":
            activity.gate.open()
            self._emit(StatusChanged(status="running"))
            self._say("resumed")

    def drop_arm(self, arm: int) -> None:
        arms = len(self.arms)
        if isinstance(arm, bool) or not isinstance(arm, int) or not 0 <= arm < arms:
            raise ConfigError(f"drop_arm: no candidate {arm} (there are {arms})")
        if arm not in self.state.dropped:
            self._emit(ArmDropped(arm=arm))
            self._say(f"candidate {arm} dropped")

    def cancel(self, reason: str = "cancelled by the user") -> None:
        self._stop("cancelled", reason)

    def stop_search(self, reason: str = "search stopped by the user") -> None:
        """End the search now: calls in flight are cancelled (never scored), no more candidates
        come, and the current leader, the runner-up and the human instruction are evaluated on
        the test pool, as when a budget is reached."""
        if self.status in ("running", "paused", "starting"):
            self._stop("stopping", f"{reason}: evaluating the leader on the test pool")

    # -- running -----------------------------------------------------------------------------------

    async def run(self) -> StudyResult:
        """Run the study to its end and return the result (also the journal's last event)."""
        activity = self._shared.activity
        activity.started_at = activity.time_s()
        if not activity.stop_requested:
            self._emit(StatusChanged(status="paused" if activity.start_paused else "running"))
        self._sync_budget()
        try:
            async with anyio.create_task_group() as group:
                self._scope = group.cancel_scope
                if activity.stop_requested:
                    group.cancel_scope.cancel()
                group.start_soon(self._monitor.run)
                group.start_soon(self._proposals.run)
                group.start_soon(self._dispatcher.run)
        finally:
            self._scope = None
        self._raise_halted()
        return await self._finish()

    async def _finish(self) -> StudyResult:
        state = self.state
        evaluations: tuple[Evaluation, ...] = ()
        status: StudyStatus = state.status
        if status not in ("failed", "cancelled"):
            self._shared.activity.message = "evaluating the winner on the test pool"
            with anyio.CancelScope() as self._evaluation_scope:
                evaluations = await self._final_evaluation()
            self._raise_halted()
            status = "finished"
            self._check_evaluations(evaluations)
        self._monitor.keep_time(force=True)
        result = views.result(self._shared, self.study_id, evaluations, status=status)
        self._shared.activity.message = f"{status}: {state.reason}" if state.reason else status
        self._emit(
            StudyFinished(
                status=status,
                reason=state.reason,
                winner=result.winner_arm,
                result=result.to_json(),
            )
        )
        self._raise_halted()
        return result

    def _check_evaluations(self, evaluations: tuple[Evaluation, ...]) -> None:
        """Every instruction evaluated, the human one among them, scored 0: say so."""
        scored = [e for e in evaluations if e.n > 0]
        if len(scored) < 2 or any(e.test_score > 0 for e in scored):
            return
        names = ", ".join(e.role.replace("_", "-") for e in scored)
        warn_nothing_learned(
            self._shared,
            f"every instruction evaluated on the test pool ({names}) scored 0.",
            0.0,
            recent_examples(self._shared),
        )

    async def _final_evaluation(self) -> tuple[Evaluation, ...]:
        order = views.ranked(self._shared)
        arms = self.arms
        targets = [Target("winner", arms[i].instruction, arms[i].demos) for i in order[:1]]
        targets += [Target("runner_up", arms[i].instruction, arms[i].demos) for i in order[1:2]]
        human = self.setup.task.human_instruction
        if human:
            targets.append(Target("human", human))
        baseline = self.setup.settings.gate.baseline
        if targets and baseline:  # the gate's, on the same test examples
            targets.append(Target("baseline", baseline))
        if not targets or not self.setup.splits.test:
            return ()
        evaluations: tuple[Evaluation, ...] = ()
        try:
            evaluations = await FinalEvaluation(self._shared, targets).run()
        except* ScorerError as failed:  # the user's scorer: `_finish` raises it
            self._halt(failed.exceptions[0])  # type: ignore[arg-type]
        return evaluations

    # -- what the parts call -------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._shared.state.apply(event)
        if isinstance(event, _BUDGET_EVENTS):
            self._sync_budget()
        for observer in self.observers:
            try:
                observer(event)
            except JournalError as error:  # the journal could not write it: stop here
                self._halt(error)
        self._shared.activity.notify()

    def _halt(self, error: EngineError) -> None:
        """Stop at once: a call made now could not be recorded (the journal failed), so a
        resume would pay for it again; or the user's scorer failed, and would on every call.
        Nothing more is evaluated; `run()` raises the error."""
        if self._halted is not None:
            return
        self._halted = error
        self._stop("failed", str(error))
        if self._scope is not None:
            self._scope.cancel()
        if self._evaluation_scope is not None:
            self._evaluation_scope.cancel()

    def _raise_halted(self) -> None:
        if self._halted is not None:
            raise self._halted

    def _say(self, message: str) -> None:
        self._shared.activity.message = message
        self._shared.activity.notify()

    def _sync_budget(self) -> None:
        """The policy owns the scoring-call budget: tell it what is open to the current pool,
        and wake the parts that wait for more of it."""
        limit = scoring_limit(self._shared)
        self.state.policy.set_budget(None if limit is None else int(limit))
        self._shared.activity.notify()

    def _stop(self, status: str, reason: str) -> None:
        activity = self._shared.activity
        if activity.stop_requested:
            return
        activity.stop_requested = True
        activity.gate.open()
        final: StudyStatus = "stopping" if status == "stopping" else status  # type: ignore[assignment]
        self._emit(StatusChanged(status=final, reason=reason))
        activity.message = reason
        if self._scope is not None:
            self._scope.cancel()

    def _call_failed(self, error: EndpointError | ScorerError, role: str, fatal: bool) -> None:
        if isinstance(error, ScorerError):  # the user's code, not the endpoint: stop here
            self._halt(error)
            return
        state = self.state
        fatal = fatal or unfixable(error)  # a wrong key, URL or model: no retry will help
        kind = getattr(error, "kind", type(error).__name__)
        message = f"call failed for good ({kind}): {error}"
        self._emit(
            CallFailed(role=role, error_kind=kind, message=message[:2000], fatal=fatal)  # type: ignore[arg-type]
        )
        self._say(message)
        spend = state.spend
        calls = spend.scoring_calls + spend.proposal_calls + state.failures
        limits = self.setup.settings.failures
        threshold = max(limits.max_failures, limits.max_failure_share * calls)
        if fatal:
            self._stop("failed", f"stopped: {error}")
        elif state.failures > threshold:
            kinds = ", ".join(f"{k} x {v}" for k, v in sorted(state.failure_kinds.items()))
            self._stop(
                "failed",
                f"stopped: {state.failures} calls failed for good ({kinds}), more than the "
                f"threshold of {threshold:.0f} (max_failures={limits.max_failures}, "
                f"max_failure_share={limits.max_failure_share}); last error: {error}. "
                "Check the endpoint, then resume from the journal",
            )
