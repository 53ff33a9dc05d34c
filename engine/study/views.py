"""Read-outs of a study: the live `StudySnapshot` (for the screens and the service) and the
final `StudyResult`, both built from the shared state and never changing it."""

from __future__ import annotations

from collections.abc import Sequence

from engine.search.policy import ArmState
from engine.study.budgets import Spend
from engine.study.evaluation import Evaluation
from engine.study.events import StudyStatus
from engine.study.gate import gate_verdict
from engine.study.result import StudyResult
from engine.study.shared import Shared
from engine.study.snapshot import (
    ArmRow,
    EndpointRow,
    LimiterRow,
    ProposalRow,
    ShownState,
    SnapshotExtra,
    StudySnapshot,
    ThroughputRow,
    held_out_of,
)
from engine.study.state import StudyState
from engine.task.types import Example

__all__ = [
    "arm_rows",
    "arm_state",
    "final_state_of_arm",
    "ranked",
    "ranked_arms",
    "result",
    "snapshot",
    "state_of_arm",
]

_SHOWN: frozenset[str] = frozenset({"leader", "active", "eliminated", "complete", "dropped"})


def arm_state(shared: Shared, arm: int) -> ArmState:
    return state_of_arm(shared.state, arm)


def state_of_arm(state: StudyState, arm: int) -> ArmState:
    if arm in state.dropped:
        return "dropped"
    shown = state.policy.stats(arm).state
    return shown if shown in _SHOWN else "active"


def final_state_of_arm(state: StudyState, arm: int) -> ShownState:
    """An arm's state as the result and the record read it: once the search has ended, an arm
    it left active reads "open" (nothing is active any more, and it was not eliminated)."""
    shown = state_of_arm(state, arm)
    ended = state.status in ("stopping", "finished", "failed", "cancelled")
    return "open" if shown == "active" and ended else shown


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


def arm_rows(
    state: StudyState,
    n: int,
    leader: int | None = None,
    demo_pool: Sequence[Example] = (),
) -> tuple[ArmRow, ...]:
    """Every candidate as one row (the live board, the result, a journal read back); `leader`,
    when given, is marked so unless it was dropped or eliminated. A candidate with demos of
    its own (the demo search) shows them as (input, output) when `demo_pool` is given."""
    rows = []
    for arm in state.arms:
        texts = None
        if arm.demos is not None and demo_pool and all(i < len(demo_pool) for i in arm.demos):
            texts = tuple((demo_pool[i].input, demo_pool[i].outputs[0]) for i in arm.demos)
        stats = state.policy.stats(arm.index)
        shown = final_state_of_arm(state, arm.index)
        if arm.index == leader and shown not in ("dropped", "eliminated"):
            shown = "leader"
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
                state=shown,
                origin=arm.origin,
                parent=arm.parent,
                parents=arm.parents,
                name=arm.name,
                demos=arm.demos,
                demo_texts=texts,
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
    spend = Spend.from_json(state.spend.to_json())
    spend.seconds = round(seconds, 3)
    return StudySnapshot(
        study_id=study_id,
        task=shared.setup.task.name,
        policy=shared.setup.settings.search.policy,
        status=state.status,
        elapsed_s=seconds,
        eta_s=eta,
        n=len(shared.setup.splits.scoring),
        arms=arm_rows(state, len(shared.setup.splits.scoring), leader),
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
        extra=SnapshotExtra(spend=spend, reason=state.reason, errors=dict(state.first_errors)),
        endpoints=_endpoint_rows(shared),
        certificate=state.certificate() if state.arms else None,
    )


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
        candidates=arm_rows(state, n, demo_pool=shared.setup.splits.demo),
        certificate=state.certificate() if state.arms else None,
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
