"""Read-outs of a study: the live `StudySnapshot` (for the screens and the service) and the
final `StudyResult`, both built from the shared state and never changing it."""

from __future__ import annotations

from engine.search.policy import ArmState
from engine.study.budgets import Spend
from engine.study.evaluation import Evaluation
from engine.study.events import StudyStatus
from engine.study.gate import gate_verdict
from engine.study.result import CandidateResult, StudyResult
from engine.study.shared import Shared, demo_set
from engine.study.snapshot import (
    ArmRow,
    EndpointRow,
    LimiterRow,
    ProposalRow,
    StudySnapshot,
    ThroughputRow,
    held_out_of,
)
from engine.study.state import StudyState

__all__ = ["arm_state", "ranked", "ranked_arms", "result", "snapshot", "state_of_arm"]

_SHOWN: frozenset[str] = frozenset({"leader", "active", "eliminated", "complete", "dropped"})


def arm_state(shared: Shared, arm: int) -> ArmState:
    return state_of_arm(shared.state, arm)


def state_of_arm(state: StudyState, arm: int) -> ArmState:
    if arm in state.dropped:
        return "dropped"
    shown = state.policy.stats(arm).state
    return shown if shown in _SHOWN else "active"


def ranked(shared: Shared) -> list[int]:
    return ranked_arms(shared.state)


def ranked_arms(state: StudyState) -> list[int]:
    """Arms by the policy's recommendation first, then by mean (pulled arms only)."""
    policy = state.policy
    order: list[int] = []
    winner = policy.recommendation()
    if winner is not None and winner not in state.dropped:
        order.append(winner)
    rest = [
        (policy.stats(arm.index).mean, arm.index)
        for arm in state.arms
        if arm.index != winner
        and arm.index not in state.dropped
        and policy.stats(arm.index).count > 0
    ]
    rest.sort(key=lambda item: (-item[0], item[1]))
    order.extend(index for _, index in rest)
    return order


def _arm_rows(shared: Shared, leader: int | None) -> tuple[ArmRow, ...]:
    n = len(shared.setup.splits.scoring)
    rows = []
    for arm in shared.state.arms:
        stats = shared.state.policy.stats(arm.index)
        state = arm_state(shared, arm.index)
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
                state=state,
                origin=arm.origin,
                parent=arm.parent,
                parents=arm.parents,
            )
        )
    return tuple(rows)


def _endpoints(shared: Shared) -> tuple[tuple[LimiterRow, ...], int, int, float, float]:
    """The clients' limiter rows, retries, 429s, and latency percentiles (the worst)."""
    retries = rate_limited = 0
    p50 = p95 = 0.0
    limiters = []
    for client in shared.setup.clients:
        stats = client.stats()
        retries += stats.retries
        rate_limited += stats.rate_limited
        p50 = max(p50, stats.latency_p50_s)
        p95 = max(p95, stats.latency_p95_s)
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
    return tuple(limiters), retries, rate_limited, p50, p95


def _endpoint_rows(shared: Shared) -> tuple[EndpointRow, ...]:
    """One row per endpoint: by role (each pool), then the clients in no pool."""
    pools = {id(pool): pool for pool in shared.setup.pools}.values()
    grouped = [(pool.role, pool.clients, {r.name: r for r in pool.readings()}) for pool in pools]
    pooled = {id(client) for _, clients, _ in grouped for client in clients}
    alone = tuple(client for client in shared.setup.clients if id(client) not in pooled)
    if alone:
        grouped.append(("", alone, {}))
    rows = []
    for role, clients, readings in grouped:
        stats = [client.stats() for client in clients]
        total = sum(one.calls for one in stats)
        for client, one in zip(clients, stats, strict=True):
            reading = readings.get(client.name)
            rows.append(
                EndpointRow(
                    endpoint=client.name,
                    role=role or client.name,
                    model=client.config.model,
                    base_url=client.config.base_url,
                    weight=reading.weight if reading else 1.0,
                    calls=one.calls,
                    share=one.calls / total if total else 0.0,
                    in_flight=one.in_flight,
                    latency_p50_s=one.latency_p50_s,
                    latency_p95_s=one.latency_p95_s,
                    rate_limited=one.rate_limited,
                    failed_over=reading.failed_over if reading else 0,
                    state=reading.state if reading else "ok",
                    cooled_s=round(reading.cooled_s, 1) if reading else 0.0,
                    resent=reading.resent if reading else 0,
                )
            )
    return tuple(rows)


def _throughput(
    shared: Shared, retries: int, limited: int, p50: float, p95: float
) -> ThroughputRow:
    activity = shared.activity
    return ThroughputRow(
        calls_per_s=activity.calls.rate(),
        recent_calls_per_s=activity.calls.per_second(),
        latency_p50_s=p50,
        latency_p95_s=p95,
        in_flight=activity.in_flight,
        concurrency=activity.concurrency,
        retries=retries,
        rate_limited=limited,
        errors=shared.state.failures,
    )


def snapshot(shared: Shared, study_id: str) -> StudySnapshot:
    state, activity = shared.state, shared.activity
    leader = state.policy.recommendation() if state.arms else None
    limiters, retries, limited, p50, p95 = _endpoints(shared)
    seconds = activity.seconds()
    eta: float | None = None
    limit = state.budgets.limit("scoring_calls")
    rate = activity.calls.rate()
    if limit is not None and rate > 0:
        eta = max(0.0, (limit - state.spend.scoring_calls) / rate)
    spend = state.spend.to_json()
    spend["seconds"] = round(seconds, 3)
    return StudySnapshot(
        study_id=study_id,
        task=shared.setup.task.name,
        policy=shared.setup.settings.search.policy,
        status=state.status,
        elapsed_s=seconds,
        eta_s=eta,
        n=len(shared.setup.splits.scoring),
        arms=_arm_rows(shared, leader),
        throughput=_throughput(shared, retries, limited, p50, p95),
        limiters=limiters,
        budgets=state.budgets.rows(state.spend, seconds=seconds),
        proposals=ProposalRow(
            generated=state.generated,
            kept=len(state.arms),
            duplicates=state.duplicates,
            rejected=state.rejected,
            waiting=activity.proposals_in_flight,
            new_candidate_share=state.share,
            reasons=dict(state.rejected_reasons),
        ),
        message=activity.message,
        done=state.status in ("finished", "failed", "cancelled", "quarantined"),
        winner=leader,
        warnings=tuple(warning.message for warning in state.warnings),
        held_out=held_out_of(state.result),
        extra={"spend": spend, "reason": state.reason, "errors": dict(state.first_errors)},
        endpoints=_endpoint_rows(shared),
    )


def shown_demos(
    shared: Shared, demos: tuple[int, ...] | None
) -> tuple[tuple[str, str], ...] | None:
    """A candidate's own demos as (input, output), for the result (None: the study's)."""
    found = demo_set(shared, demos)
    return None if found is None else tuple((d.input, d.outputs[0]) for d in found)


def result(
    shared: Shared,
    study_id: str,
    evaluations: tuple[Evaluation, ...],
    *,
    status: StudyStatus,
) -> StudyResult:
    state = shared.state
    order = ranked(shared)
    by_role = {evaluation.role: evaluation for evaluation in evaluations}
    candidates = []
    for arm in state.arms:
        stats = state.policy.stats(arm.index)
        candidates.append(
            CandidateResult(
                arm=arm.index,
                instruction=arm.instruction,
                origin=arm.origin,
                parents=arm.parents,
                mean=float(stats.mean),
                lower=float(stats.lower),
                upper=float(stats.upper),
                pulls=int(stats.count),
                state=arm_state(shared, arm.index),
                demos=shown_demos(shared, arm.demos),
            )
        )
    n = len(shared.setup.splits.scoring)
    return StudyResult(
        study_id=study_id,
        task=shared.setup.task.name,
        policy=shared.setup.settings.search.policy,
        status=status,
        reason=state.reason,
        n=n,
        winner_arm=order[0] if order else None,
        runner_up_arm=order[1] if len(order) > 1 else None,
        winner=by_role.get("winner"),
        runner_up=by_role.get("runner_up"),
        human=by_role.get("human"),
        candidates=tuple(candidates),
        spend=Spend.from_json(state.spend.to_json()),
        full_evaluation_calls=len(state.arms) * n,
        failures=dict(state.failure_kinds),
        error=state.fatal,
        warnings=tuple(warning.message for warning in state.warnings),
        scoring=dict(shared.setup.scoring),
        proposals={kind: tally.to_json() for kind, tally in state.proposal_kinds.items()},
        baseline=by_role.get("baseline"),
        gate=gate_verdict(
            shared.setup.settings.gate, by_role.get("winner"), by_role.get("baseline"), status
        ),
    )
