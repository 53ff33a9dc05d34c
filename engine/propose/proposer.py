"""Asking a proposal model for candidate instructions (APE's proposal step and its variants).

`Proposer.propose(count)` makes one call that samples its own demos (default 5) from the demo
pool and asks for `count` candidates (``n=count``) with the forward template (completions: the
model continues "The instruction was"; chat: a message asking for the instruction alone) or the
insert template (completions with ``suffix``; the endpoint must support it, checked by
`check()` before the first call). `vary(parent, n)` asks for `n` rewordings of a leader with
the variant template of iterative APE; `reflect(parent, evidence, n)` asks for `n` revisions
of a parent after reading its answers, `merge(...)` for `n` instructions combining two parents
(their revised instruction is read out of the answer, `engine.propose.reflection`). Every answer
is cleaned (`clean_proposal`); what cannot be cleaned into an instruction is counted as
rejected. `Deduplicating` wraps a proposer and drops
exact and near copies of everything kept before, across calls. Reference: Zhou et al. (ICLR
2023), sections 3.1 and 3.3; docs/design.md, "Proposals".
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from engine.llm.client import LLMClient
from engine.llm.pool.endpoint_pool import EndpointPool
from engine.llm.probing.capabilities import Capability
from engine.llm.protocol.results import Completion
from engine.propose.normalise import (
    DEFAULT_MAX_CHARS,
    DEFAULT_SIMILARITY,
    Deduplicator,
    judge_proposal,
)
from engine.propose.proposal import CandidateSource, Evidence, Parent, Proposal, ProposalBatch
from engine.propose.reflection import judge_revision
from engine.propose.templates import Templates
from engine.task.types import Example

__all__ = ["PROPOSAL_MODES", "Deduplicating", "Proposer"]

PROPOSAL_MODES = ("forward", "insert")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
#: tokens a reflection may write before its instruction (a diagnosis of three sentences)
_DIAGNOSIS_TOKENS = 160
Judge = Callable[[str], tuple[str, str]]


def _complete_sentences(text: str) -> str:
    """A text cut off by max_tokens, back to its last finished sentence ('' if none)."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()] if ends else ""


class Proposer:
    """Forward or insert proposals from sampled demos, and variants of leaders."""

    def __init__(
        self,
        client: LLMClient | EndpointPool,
        demos: Sequence[Example],
        *,
        templates: Templates | None = None,
        mode: str = "forward",
        api: str = "chat",
        seed: int = 0,
        demos_per_call: int = 5,
        temperature: float = 1.0,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if not demos:
            raise ValueError("the proposer needs at least one demo")
        if mode not in PROPOSAL_MODES:
            raise ValueError(f"mode must be one of {', '.join(PROPOSAL_MODES)}, not {mode!r}")
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', not {api!r}")
        self.client = client
        self.demos = tuple(demos)
        self.templates = templates or Templates()
        self.mode = mode
        self.api = api
        self.demos_per_call = demos_per_call
        self.temperature = temperature
        self.max_chars = max_chars
        self.max_tokens = max(16, math.ceil(max_chars / 3))
        self.reflection_tokens = self.max_tokens + _DIAGNOSIS_TOKENS
        self._rng = np.random.default_rng(seed)

    async def check(self) -> None:
        """Fail before the first call when the endpoint cannot serve the template (insert needs
        completions with ``suffix``): an `EndpointError` naming the endpoint."""
        if self.mode == "insert":
            await self.client.require(Capability.SUFFIX)

    def identity(self) -> dict[str, Any]:
        """What defines this proposer's requests (part of the response cache's key)."""
        return {
            "mode": self.mode,
            "api": self.api,
            "templates": self.templates.fingerprint(),
            "demos_per_call": self.demos_per_call,
            "temperature": self.temperature,
            "max_chars": self.max_chars,
        }

    def sample_demos(self) -> str:
        """This call's demos: `demos_per_call` drawn without replacement from the pool."""
        count = min(self.demos_per_call, len(self.demos))
        chosen = self._rng.choice(len(self.demos), size=count, replace=False)
        pairs, fields = [], []
        for index in chosen:
            example = self.demos[int(index)]
            pairs.append((example.input, example.outputs[0] if example.outputs else ""))
            fields.append(example.fields)
        return self.templates.demos(pairs, fields)

    async def propose(self, count: int) -> ProposalBatch:
        demos = self.sample_demos()
        completion: Completion
        if self.mode == "insert":
            prompt, suffix = self.templates.insert_parts(demos)
            completion = await self.client.complete(
                prompt,
                suffix=suffix,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                n=count,
                stop=["\n"],
            )
            return self._batch(completion, "initial", (), self._imperative)
        if self.api == "chat":
            message = self.templates.forward_chat.format(demos=demos)
            completion = await self.client.chat(
                [{"role": "user", "content": message}],
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                n=count,
            )
            # "The instruction is to add the numbers." reads as "Add the numbers."
            return self._batch(completion, "initial", (), self._imperative)
        completion = await self.client.complete(
            self.templates.forward.format(demos=demos),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            n=count,
            stop=["\n\n", "\nInput:"],
        )
        return self._batch(completion, "initial", (), self._imperative)

    async def vary(self, parent_text: str, parent_id: int, n: int) -> ProposalBatch:
        prompt = self.templates.variant.format(instruction=parent_text)
        completion = await self._ask(prompt, prompt, n, self.max_tokens, ["\n\n", "\nInput:"])
        return self._batch(completion, "resample", (parent_id,), self._plain)

    async def reflect(self, parent: Parent, evidence: Sequence[Evidence], n: int) -> ProposalBatch:
        examples = self.templates.evidence(evidence)
        chat = self.templates.reflect_chat.format(instruction=parent.instruction, examples=examples)
        text = self.templates.reflect.format(instruction=parent.instruction, examples=examples)
        completion = await self._ask(chat, text, n, self.reflection_tokens, ["\n\n\n"])
        return self._batch(completion, "reflect", (parent.arm,), self._revision)

    async def merge(
        self,
        first: Parent,
        second: Parent,
        first_only: Sequence[Evidence],
        second_only: Sequence[Evidence],
        n: int,
    ) -> ProposalBatch:
        fields = {
            "first": first.instruction,
            "second": second.instruction,
            "first_only": self.templates.merge_examples(first_only),
            "second_only": self.templates.merge_examples(second_only),
        }
        chat = self.templates.merge_chat.format(**fields)
        text = self.templates.merge.format(**fields)
        completion = await self._ask(chat, text, n, self.max_tokens, ["\n\n", "\nInput:"])
        return self._batch(completion, "merge", (first.arm, second.arm), self._revision)

    async def _ask(
        self, chat: str, text: str, n: int, max_tokens: int, stop: list[str]
    ) -> Completion:
        """One call with `n` answers: the message `chat` on chat, else the text `text`."""
        if self.api == "chat":
            return await self.client.chat(
                [{"role": "user", "content": chat}],
                max_tokens=max_tokens,
                temperature=self.temperature,
                n=n,
            )
        return await self.client.complete(
            text, max_tokens=max_tokens, temperature=self.temperature, n=n, stop=stop
        )

    def _imperative(self, text: str) -> tuple[str, str]:
        return judge_proposal(text, max_chars=self.max_chars, imperative=True)

    def _plain(self, text: str) -> tuple[str, str]:
        return judge_proposal(text, max_chars=self.max_chars, imperative=False)

    def _revision(self, text: str) -> tuple[str, str]:
        return judge_revision(text, max_chars=self.max_chars)

    def _batch(
        self, completion: Completion, kind: str, parents: tuple[int, ...], judge: Judge
    ) -> ProposalBatch:
        proposals = []
        rejected: dict[str, int] = {}
        finished = completion.finish_reasons
        for index, text in enumerate(completion.texts):
            if index < len(finished) and finished[index] == "length":
                text = _complete_sentences(text.strip())
            instruction, why = judge(text)
            if instruction:
                proposals.append(Proposal(instruction, kind, parents))
            else:
                rejected[why] = rejected.get(why, 0) + 1
        return ProposalBatch(
            tuple(proposals),
            calls=1,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            generated=len(completion.texts),
            duplicates=0,
            rejected=sum(rejected.values()),
            model=completion.model,
            raw=tuple(completion.texts),
            reasons=rejected,
            kind=kind,
            latency_s=completion.latency_s,
        )


class Deduplicating:
    """A proposer whose batches hold no exact or near copy of anything kept before (token-set
    Jaccard similarity >= `similarity`); copies are counted in `duplicates`."""

    def __init__(
        self,
        proposer: CandidateSource,
        *,
        similarity: float = DEFAULT_SIMILARITY,
        known: Iterable[str] = (),
    ) -> None:
        self.proposer = proposer
        self.seen = Deduplicator(similarity, known)

    def _filter(self, batch: ProposalBatch) -> ProposalBatch:
        kept = []
        duplicates = batch.duplicates
        for proposal in batch.proposals:
            if self.seen.check(proposal.text).new:
                kept.append(proposal)
            else:
                duplicates += 1
        return dataclasses.replace(batch, proposals=tuple(kept), duplicates=duplicates)

    async def propose(self, count: int) -> ProposalBatch:
        return self._filter(await self.proposer.propose(count))

    async def vary(self, parent_text: str, parent_id: int, n: int) -> ProposalBatch:
        self.seen.add(parent_text)
        return self._filter(await self.proposer.vary(parent_text, parent_id, n))

    async def reflect(self, parent: Parent, evidence: Sequence[Evidence], n: int) -> ProposalBatch:
        self.seen.add(parent.instruction)
        return self._filter(await self.proposer.reflect(parent, evidence, n))

    async def merge(
        self,
        first: Parent,
        second: Parent,
        first_only: Sequence[Evidence],
        second_only: Sequence[Evidence],
        n: int,
    ) -> ProposalBatch:
        self.seen.add(first.instruction)
        self.seen.add(second.instruction)
        return self._filter(await self.proposer.merge(first, second, first_only, second_only, n))
