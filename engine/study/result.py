"""What a study returns: the winner and baselines with their test scores, every candidate, and
the spend, as a frozen `StudyResult` with a JSON form (the `--json` output and the journal's
last record)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.search import Certificate
from engine.study.budgets import Spend
from engine.study.evaluation import Evaluation
from engine.study.gate import GateVerdict
from engine.study.snapshot import ArmRow

__all__ = ["StudyResult"]


@dataclass(frozen=True, slots=True)
class StudyResult:
    study_id: str
    task: str
    policy: str
    status: str  # "finished", "failed" or "cancelled"
    reason: str
    n: int
    winner_arm: int | None
    runner_up_arm: int | None
    winner: Evaluation | None
    runner_up: Evaluation | None
    human: Evaluation | None
    candidates: tuple[ArmRow, ...]
    spend: Spend
    full_evaluation_calls: int
    failures: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    warnings: tuple[str, ...] = ()
    scoring: dict[str, Any] = field(default_factory=dict)  # how the target was asked
    proposals: dict[str, dict[str, Any]] = field(default_factory=dict)  # by kind of call
    certificate: Certificate | None = None  # what the data prove about the pick
    baseline: Evaluation | None = None  # the gate's baseline on the test pool
    gate: GateVerdict | None = None  # pass or fail (`engine.study.gate`), when it has one

    @property
    def ok(self) -> bool:
        return self.status == "finished"

    @property
    def call_ratio(self) -> float:
        """Scoring calls spent / calls of full evaluation."""
        if self.full_evaluation_calls == 0:
            return 0.0
        return self.spend.scoring_calls / self.full_evaluation_calls

    def to_json(self) -> dict[str, Any]:
        def evaluation(value: Evaluation | None, arm: int | None) -> dict[str, Any] | None:
            if value is None:
                return None
            data = value.to_json()
            if arm is not None:
                data["arm"] = arm
            return data

        return {
            "study_id": self.study_id,
            "task": self.task,
            "policy": self.policy,
            "status": self.status,
            "reason": self.reason,
            "error": self.error,
            "n": self.n,
            "winner": evaluation(self.winner, self.winner_arm),
            "runner_up": evaluation(self.runner_up, self.runner_up_arm),
            "human": evaluation(self.human, None),
            "baseline": evaluation(self.baseline, None),
            "gate": self.gate.to_json() if self.gate is not None else None,
            "candidates": [candidate.to_json() for candidate in self.candidates],
            "spend": self.spend.to_json(),
            "proposal_share": self.spend.proposal_share(),
            "proposals": {kind: dict(tally) for kind, tally in self.proposals.items()},
            "full_evaluation_calls": self.full_evaluation_calls,
            "call_ratio": round(self.call_ratio, 4),
            "failures": dict(self.failures),
            "warnings": list(self.warnings),
            "scoring": dict(self.scoring),
            "certificate": None if self.certificate is None else asdict(self.certificate),
        }
