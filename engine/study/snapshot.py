"""What a running study shows the outside: a snapshot to render, and the controls it obeys.

The study produces `StudySnapshot` values (immutable, cheap to build several times a second);
the terminal UI renders them with pure functions and the service serves them as JSON. Changes go
the other way through the `StudyControl` protocol, which the study implements and which the UI
keys and the service's PATCH route call. Nothing here does IO.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from engine.decoding import Invalid, convert
from engine.errors import EngineError
from engine.search import Certificate
from engine.search.policy import ArmState
from engine.study.budgets import BudgetRow, Budgets, Spend
from engine.study.events import StudyStatus

__all__ = [
    "ArmRow",
    "BudgetRow",
    "EndpointRow",
    "HeldOutResult",
    "HeldOutScore",
    "LimiterRow",
    "ProposalRow",
    "ShownState",
    "SnapshotError",
    "SnapshotExtra",
    "StudyControl",
    "StudySnapshot",
    "ThroughputRow",
    "held_out_of",
]


#: A candidate's state as read-outs show it: the policy's (`ArmState`), or "open" for one the
#: search left active when it ended.
ShownState = ArmState | Literal["open"]


class SnapshotError(EngineError):
    """A snapshot's JSON (from a service) lacks a field or has one of the wrong type."""


@dataclass(frozen=True, slots=True)
class ArmRow:
    """One candidate as every read-out shows it (the live leaderboard, the result, a journal
    read back): its text, its kind (`origin`: "initial", "resample", "reflect", "merge", "human"
    or "user") and the candidates it was written from (`parents`; `parent` the first), its pool
    mean and interval, the pulls observed and in flight of a pool of `n`, and its state
    ("leader" on a live board). `name` is the user's name for their own candidate."""

    arm: int
    instruction: str
    mean: float
    lower: float
    upper: float
    pulls: int
    pending: int
    n: int
    state: ShownState
    origin: str
    parent: int | None = None
    parents: tuple[int, ...] = ()
    name: str = ""
    demos: tuple[int, ...] | None = None  # its own demo set, by place in the demo pool
    #: those demos as (input, output), when the task's pools are known
    demo_texts: tuple[tuple[str, str], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The candidate in a result record (`StudyResult.to_json`)."""
        shown: dict[str, Any] = {
            "arm": self.arm,
            "instruction": self.instruction,
            "origin": self.origin,
            "parent": self.parent,
            "parents": list(self.parents),
            "mean": round(self.mean, 6),
            "lower": round(self.lower, 6),
            "upper": round(self.upper, 6),
            "pulls": self.pulls,
            "state": self.state,
        }
        if self.name:
            shown["name"] = self.name
        if self.demo_texts is not None:
            shown["demos"] = [{"input": x, "output": y} for x, y in self.demo_texts]
        return shown


@dataclass(frozen=True, slots=True)
class ThroughputRow:
    calls_per_s: float
    recent_calls_per_s: tuple[float, ...]  # oldest first, one value per second, for a sparkline
    latency_p50_s: float
    latency_p95_s: float
    in_flight: int
    concurrency: int
    retries: int
    rate_limited: int  # 429 answers
    errors: int  # calls that failed for good


@dataclass(frozen=True, slots=True)
class LimiterRow:
    """One bucket of an endpoint's limiter. `fill` in [0, 1]; rates per minute, None = unlimited."""

    endpoint: str
    requests_per_minute: float | None
    tokens_per_minute: float | None
    request_fill: float
    token_fill: float
    adaptive: bool


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """One endpoint of a role (`role`: "target" for scoring, "proposal", or "judge"): its share
    of the role's calls, its calls in flight, latency, 429 answers, the calls it failed that went
    to another endpoint (`resent`: of those, the calls whose request had been sent, which may
    have been served and so paid twice), and its state in the pool ("ok"; "cooled": skipped for
    `cooled_s` more seconds after failures; "probing": its cool-down is over and one call at a
    time tests it)."""

    endpoint: str
    role: str
    model: str
    base_url: str
    weight: float
    calls: int
    share: float
    in_flight: int
    latency_p50_s: float
    latency_p95_s: float
    rate_limited: int
    failed_over: int
    state: Literal["ok", "cooled", "probing"] = "ok"
    cooled_s: float = 0.0
    resent: int = 0


@dataclass(frozen=True, slots=True)
class ProposalRow:
    generated: int
    kept: int
    duplicates: int
    rejected: int
    waiting: int  # proposal calls queued or in flight
    new_candidate_share: float  # share of the scoring budget kept for new candidates
    reasons: dict[str, int] = field(default_factory=dict)  # why answers were rejected


@dataclass(frozen=True, slots=True)
class HeldOutScore:
    """One instruction scored on the held-out test pool: the mean over `n` examples the search
    never saw, its 95 % interval, the calls that failed for good (left out, never scored 0), and
    the candidate's number (None for the human instruction)."""

    instruction: str
    test_score: float
    test_ci: tuple[float, float]
    n: int
    failed: int = 0
    arm: int | None = None


@dataclass(frozen=True, slots=True)
class HeldOutResult:
    """The final evaluation of an ended study: the winner, the runner-up and the task's human
    instruction on the test pool (None: not evaluated)."""

    winner: HeldOutScore | None = None
    runner_up: HeldOutScore | None = None
    human: HeldOutScore | None = None


def held_out_of(result: dict[str, Any] | None) -> HeldOutResult | None:
    """The held-out scores of a study's result record (`StudyResult.to_json`, the journal's
    `finished` event); None when there is no result or nothing was evaluated."""
    if not result:
        return None
    roles = {role: result.get(role) for role in ("winner", "runner_up", "human")}
    try:
        held: HeldOutResult = convert(roles, HeldOutResult)
    except Invalid as error:
        raise SnapshotError(f"result record: {error}") from None
    if held.winner is None and held.runner_up is None and held.human is None:
        return None
    return held


@dataclass(frozen=True, slots=True)
class SnapshotExtra:
    """What a snapshot says beyond its rows: the spend so far, why the study ended, the first
    message of each kind of failure (every screen shows them at once), and once it ended its
    result record (`StudyResult.to_json`, which the service adds)."""

    spend: Spend = field(default_factory=Spend)
    reason: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StudySnapshot:
    study_id: str
    task: str
    policy: str
    status: StudyStatus
    elapsed_s: float
    eta_s: float | None
    n: int  # size of the scoring pool
    arms: tuple[ArmRow, ...]
    throughput: ThroughputRow
    limiters: tuple[LimiterRow, ...]
    budgets: tuple[BudgetRow, ...]
    proposals: ProposalRow
    message: str = ""  # last notable event or error, for a status line
    done: bool = False
    winner: int | None = None  # the leader's arm (the policy's pick); once ended, the winner's
    warnings: tuple[str, ...] = ()  # said once each (a StudyWarning event), newest last
    held_out: HeldOutResult | None = None  # once the study ended: its test-pool scores
    extra: SnapshotExtra = field(default_factory=SnapshotExtra)
    endpoints: tuple[EndpointRow, ...] = ()  # one per endpoint of each role
    certificate: Certificate | None = None  # what the data prove about the leader now

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def blank(
        cls,
        study_id: str,
        *,
        task: str,
        policy: str,
        status: StudyStatus,
        reason: str = "",
        n: int = 0,
        concurrency: int = 0,
        budgets: Budgets | None = None,
        new_candidate_share: float = 0.0,
        winner: int | None = None,
        held_out: HeldOutResult | None = None,
        result: dict[str, Any] | None = None,
    ) -> StudySnapshot:
        """The snapshot of a study with no live state: not started, failed before it could,
        or ended and read back from its records."""
        return cls(
            study_id=study_id,
            task=task,
            policy=policy,
            status=status,
            elapsed_s=0.0,
            eta_s=None,
            n=n,
            arms=(),
            throughput=ThroughputRow(0.0, (), 0.0, 0.0, 0, concurrency, 0, 0, 0),
            limiters=(),
            budgets=(budgets or Budgets()).rows(Spend()),
            proposals=ProposalRow(0, 0, 0, 0, 0, new_candidate_share),
            message=reason,
            done=status != "starting",
            winner=winner,
            held_out=held_out,
            extra=SnapshotExtra(reason=reason, result=result),
        )

    @classmethod
    def from_json(cls, data: Any) -> StudySnapshot:
        """Rebuild a snapshot from `to_json()` output (as the service sends it), decoded by the
        field types. Unknown keys are ignored (a newer service may add some); a missing or
        mistyped field raises `SnapshotError` naming its path (``arms[0].pulls``)."""
        try:
            snapshot: StudySnapshot = convert(data, cls)
        except Invalid as error:
            raise SnapshotError(f"snapshot JSON: {error}") from None
        return snapshot


class StudyControl(Protocol):
    """Live changes to a running study. Every method takes effect on the next scheduling step
    and raises `engine.errors.ConfigError` (naming the field) for a value it cannot accept."""

    def snapshot(self) -> StudySnapshot: ...

    def set_concurrency(self, concurrency: int) -> None: ...

    def set_rate_limits(
        self,
        *,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        endpoint: str | None = None,
    ) -> None:
        """The limits of the endpoint named `endpoint` (a `LimiterRow.endpoint`), or of every
        endpoint of the study when it is None."""

    def set_budget(self, name: str, limit: float | None) -> None: ...

    def set_new_candidate_share(self, share: float) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def drop_arm(self, arm: int) -> None: ...

    def cancel(self, reason: str = "cancelled by the user") -> None: ...

    def stop_search(self, reason: str = "search stopped by the user") -> None:
        """Stop searching and evaluate the current leader on the test pool."""
