"""The values and the interface of the proposal side: a `Proposal`, what a call produced (a
`ProposalBatch`), what a reflection or a merge is shown (`Parent`, `Evidence`), and
`CandidateSource`, what the study calls for new candidates (the `Proposer`, and the cache and
de-duplication around it, implement it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from engine.task.types import FieldValues

__all__ = ["CandidateSource", "Evidence", "Parent", "Proposal", "ProposalBatch"]


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposed instruction, its kind ("initial", "resample", "reflect" or "merge"; the
    study's kinds are `engine.study.events.ORIGINS`) and the candidates it was written from."""

    text: str
    origin: str
    parents: tuple[int, ...] = ()

    @property
    def parent(self) -> int | None:
        return self.parents[0] if self.parents else None


@dataclass(frozen=True, slots=True)
class Parent:
    """A candidate a variant is written from: its number and its instruction."""

    arm: int
    instruction: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """One example of the scoring pool as a reflection or a merge shows it: the input, the
    expected output, the model's answer under the parent (empty when none was kept) and
    whether it was right."""

    input: str
    expected: str
    answer: str
    right: bool
    fields: FieldValues | None = None  # the input's named fields, when it has them


@dataclass(frozen=True, slots=True)
class ProposalBatch:
    """What one or more proposal calls produced, after normalisation and de-duplication:
    `generated` answers, of which `rejected` were not instructions (`reasons`: why, by
    `REJECTIONS` name) and `duplicates` copied one kept before; `raw`: each answer as the
    model wrote it; `kind`: the kind of call ("initial", "resample", "reflect", "merge");
    `latency_s`: the calls' round trips, summed (0 for answers from the cache)."""

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
    kind: str = ""
    latency_s: float = 0.0


class CandidateSource(Protocol):
    """Where the study's candidates come from."""

    async def propose(self, count: int) -> ProposalBatch:
        """Called for the first batch: about `count` new instructions from the task's demos
        (one or more calls; what they cost is in the batch)."""
        ...

    async def vary(self, parent_text: str, parent_id: int, n: int) -> ProposalBatch:
        """Called in a variant round that resamples, once per parent: `n` rewordings of its
        instruction (kind "resample", parent `parent_id`)."""
        ...

    async def reflect(self, parent: Parent, evidence: Sequence[Evidence], n: int) -> ProposalBatch:
        """Called in a variant round that reflects, once per parent: `n` revisions of its
        instruction written after reading its answers (`evidence`: the wrong ones first, then
        a few right ones for contrast; kind "reflect")."""
        ...

    async def merge(
        self,
        first: Parent,
        second: Parent,
        first_only: Sequence[Evidence],
        second_only: Sequence[Evidence],
        n: int,
    ) -> ProposalBatch:
        """Called in a variant round that merges: `n` instructions combining two parents, shown
        examples only `first` gets right and examples only `second` gets right (kind
        "merge", both parents)."""
        ...
