"""The values and the interface of the proposal side: a `Proposal`, what a call produced (a
`ProposalBatch`), and `CandidateSource`, what the study calls for new candidates (the
`Proposer`, and the cache and de-duplication around it, implement it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CandidateSource", "Proposal", "ProposalBatch"]


@dataclass(frozen=True, slots=True)
class Proposal:
    text: str
    origin: str  # "proposal", "variant", "human" or "user"
    parent: int | None = None


@dataclass(frozen=True, slots=True)
class ProposalBatch:
    """What one or more proposal calls produced, after normalisation and de-duplication:
    `generated` answers, of which `rejected` were not instructions (`reasons`: why, by
    `REJECTIONS` name) and `duplicates` copied one kept before; `raw`: each answer as the
    model wrote it."""

    proposals: tuple[Proposal, ...]
    calls: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generated: int = 0
    duplicates: int = 0
    rejected: int = 0
    cached_calls: int = 0
    model: str = ""
    raw: tuple[str, ...] = ()
    reasons: dict[str, int] = field(default_factory=dict)


class CandidateSource(Protocol):
    """Where the study's candidates come from."""

    async def propose(self, count: int) -> ProposalBatch:
        """Called for the first batch: about `count` new instructions from the task's demos
        (one or more calls; what they cost is in the batch)."""
        ...

    async def vary(self, parent_text: str, parent_id: int, n: int) -> ProposalBatch:
        """Called in each variant round, once per leader: `n` variants of the leader's
        instruction (origin "variant", parent `parent_id`)."""
        ...
