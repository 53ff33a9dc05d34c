"""The study's proposer from its config: the template it names (insert is checked against the
endpoint now), the response cache, then de-duplication."""

from __future__ import annotations

from collections.abc import Iterable

from engine.llm.client import LLMClient
from engine.llm.pool.endpoint_pool import EndpointPool
from engine.propose import CandidateSource, Deduplicating, Proposer, Templates
from engine.study.cache import CachedProposer, ResponseCache
from engine.study.config import StudyConfig
from engine.task.types import Example

__all__ = ["build_proposer"]


async def build_proposer(
    config: StudyConfig,
    client: LLMClient | EndpointPool,
    demos: tuple[Example, ...],
    *,
    templates: Templates,
    cache: ResponseCache | None = None,
    endpoint: str = "",
    task: str = "",
    known: Iterable[str] = (),
) -> CandidateSource:
    """The study's proposer: the template the config names (insert is checked against the
    endpoint now), the response cache, then de-duplication against `known` and everything
    proposed since."""
    proposer = Proposer(
        client,
        demos,
        templates=templates,
        mode=config.proposal_template,
        api=config.api,
        seed=config.seed,
        demos_per_call=config.demos_per_proposal,
        max_chars=config.max_instruction_chars,
    )
    await proposer.check()
    inner: CandidateSource = proposer
    if cache is not None:
        request = {
            "kind": "propose",
            "model": config.proposal_model or config.model,
            "base_url": endpoint,
            "seed": config.seed,
            "task": task,
            **proposer.identity(),
        }
        inner = CachedProposer(proposer, cache, request)
    return Deduplicating(inner, similarity=config.duplicate_similarity, known=known)
