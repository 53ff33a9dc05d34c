"""The seams the study is wired through: policy, scorer, proposer and recorder, as Protocols.

The study only depends on these shapes; `engine.study.scoring` fits the real parts to them
(the scheduler of `engine.search`, the scorers and proposer of `engine.propose`, the journal of
`engine.study.journal`), and tests fit fakes to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine.propose._base import Proposal, ProposalBatch, ProposerLike
from engine.task.types import Example

__all__ = [
    "ArmStatsLike",
    "PolicyLike",
    "Proposal",
    "ProposalBatch",
    "ProposerLike",
    "PullLike",
    "Score",
    "ScorerLike",
]


class PullLike(Protocol):
    """One pull: score arm `arm` on example `example` (an index into the scoring pool)."""

    @property
    def arm(self) -> int: ...

    @property
    def example(self) -> int: ...


class ArmStatsLike(Protocol):
    @property
    def mean(self) -> float: ...

    @property
    def count(self) -> int: ...

    @property
    def pending(self) -> int: ...

    @property
    def lower(self) -> float: ...

    @property
    def upper(self) -> float: ...

    @property
    def state(self) -> str: ...


class PolicyLike(Protocol):
    """A best-arm-identification policy over a finite scoring pool (pure, synchronous)."""

    def add_arm(self) -> int: ...

    def select(self, k: int) -> Sequence[PullLike]: ...

    def observe(self, pull: Any, reward: float) -> None: ...

    def cancel(self, pull: Any) -> None: ...

    def record(self, arm: int, example: int, reward: float) -> None: ...

    def drop(self, arm: int) -> None: ...

    def set_budget(self, n: int | None) -> None: ...

    def stats(self, arm: int) -> ArmStatsLike: ...

    def recommendation(self) -> int | None: ...

    def done(self) -> bool: ...

    @property
    def pulls_used(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Score:
    """The reward of one scoring call and what it cost (`cached`: answered by the cache)."""

    reward: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    model: str = ""


class ScorerLike(Protocol):
    async def score(self, instruction: str, example: Example) -> Score: ...
