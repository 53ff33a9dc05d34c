"""The values and the seam of the proposal side: a `Proposal`, what a call produced (a
`ProposalBatch`), and the `ProposerLike` protocol the study calls. `engine.study.interfaces`
re-exports them, so the study depends on these shapes and not on the proposer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Proposal", "ProposalBatch", "ProposerLike"]


@dataclass(frozen=True, slots=True)
class Proposal:
    text: str
    origin: str  # "proposal", "variant", "human" or "user"
    parent: int | None = None


@dataclass(frozen=True, slots=True)
class ProposalBatch:
    """What one or more proposal calls produced, after normalisation and de-duplication:
    `generated` answers, of which `rejected` were not instructions and `duplicates` copied one
    kept before."""

    proposals: tuple[Proposal, ...]
    calls: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generated: int = 0
    duplicates: int = 0
    rejected: int = 0
    cached_calls: int = 0
    model: str = ""


class ProposerLike(Protocol):
    async def propose(self, count: int) -> ProposalBatch: ...

    async def vary(self, parent_text: str, parent_id: int, n: int) -> ProposalBatch: ...
