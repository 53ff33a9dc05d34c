"""The settings a running study reads, grouped by who reads them.

`engine.study.config.StudyConfig` is what users write (flags, TOML, a service request); it is
checked once where it enters and hands the study these groups. The study never sees endpoint
URLs, file paths or keys: those are the composition's (`engine.app`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BUDGET_NAMES",
    "BudgetLimits",
    "BudgetName",
    "FailureLimits",
    "ProposalPlan",
    "StudySettings",
]

BudgetName = Literal["scoring_calls", "proposal_calls", "tokens", "usd", "seconds"]
#: The budgets, by the one name each keeps from flag (``--budget-scoring-calls``) to policy.
BUDGET_NAMES: tuple[BudgetName, ...] = (
    "scoring_calls",
    "proposal_calls",
    "tokens",
    "usd",
    "seconds",
)


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """Where the study stops; None is unlimited. Changeable while it runs."""

    scoring_calls: int | None = None
    proposal_calls: int | None = None
    tokens: int | None = None
    usd: float | None = None
    seconds: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in BUDGET_NAMES}


@dataclass(frozen=True, slots=True)
class ProposalPlan:
    """How many candidates come, when, and how much of the scoring budget waits for them."""

    initial_candidates: int = 20
    candidates_per_call: int = 5
    variant_rounds: int = 2
    variant_leaders: int = 3
    variants_per_leader: int = 3
    new_candidate_share: float = 0.25
    max_candidates: int = 200
    include_human: bool = False
    user_candidates: int = 0  # the user's own candidates, added before any proposal

    def planned(self) -> int:
        """The candidates the study plans: the first batch, every variant round, the human
        instruction (the scheduler shares its error probability among that many)."""
        variants = self.variant_rounds * self.variant_leaders * self.variants_per_leader
        planned = (
            self.initial_candidates + variants + int(self.include_human) + self.user_candidates
        )
        return max(1, min(planned, self.max_candidates))


@dataclass(frozen=True, slots=True)
class FailureLimits:
    """A study stops when more calls failed for good than max(max_failures, max_failure_share
    x calls so far)."""

    max_failures: int = 20
    max_failure_share: float = 0.1


@dataclass(frozen=True, slots=True)
class StudySettings:
    """Everything the study itself reads."""

    policy: str = "paired"
    concurrency: int = 32
    late_binding: bool = True  # choose each pull when its call can be sent
    group_by_candidate: bool = True  # send the pulls chosen together candidate by candidate
    budgets: BudgetLimits = field(default_factory=BudgetLimits)
    proposals: ProposalPlan = field(default_factory=ProposalPlan)
    failures: FailureLimits = field(default_factory=FailureLimits)
    answer_chars: int = 200  # of each model answer kept in the events (0: none)
