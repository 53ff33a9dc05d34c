"""The study's proposer from its config: the template it names (insert is checked against the
endpoint now), the response cache, then de-duplication."""

from __future__ import annotations

from collections.abc import Iterable

from engine.llm.client import LLMClient
from engine.llm.pool.endpoint_pool import EndpointPool
from engine.propose import CandidateSource, Deduplicating, Proposer, Templates
from engine.study.cache import CachedProposer, ResponseCache
from engine.study.settings import ProposalPlan
from engine.task.types import Example

__all__ = ["build_proposer"]


async def build_proposer(
    plan: ProposalPlan,
    client: LLMClient | EndpointPool,
    demos: tuple[Example, ...],
    *,
    api: str,
    model: str,
    seed: int,
    templates: Templates,
    cache: ResponseCache | None = None,
    endpoint: str = "",
    task: str = "",
    known: Iterable[str] = (),
) -> CandidateSource:
    """The study's proposer: the proposal `model`, speaking `api`, asked by the template the
    plan names (insert is checked against the endpoint now), the response cache, then
    de-duplication against `known` and everything proposed since."""
    proposer = Proposer(
        client,
        demos,
        templates=templates,
        mode=plan.template,
        api=api,
        seed=seed,
        demos_per_call=plan.demos_per_proposal,
        max_chars=plan.max_instruction_chars,
    )
    await proposer.check()
    inner: CandidateSource = proposer
    if cache is not None:
        request = {
            "kind": "propose",
            "model": model,
            "base_url": endpoint,
            "seed": seed,
            "task": task,
            **proposer.identity(),
        }
        inner = CachedProposer(proposer, cache, request)
    return Deduplicating(inner, similarity=plan.duplicate_similarity, known=known)
