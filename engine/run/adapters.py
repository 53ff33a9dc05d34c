"""Adapters from the engine's parts to the study's seams (`engine.run._base`).

`ClientScorer` scores one (instruction, example) through an `LLMClient` with the default
scoring template of DESIGN.md section 1 (execution accuracy: greedy answer, stop at the end of
the line, the task's metric; log-probability: exp(mean token log-prob) of the accepted output
via completions echo). `ClientProposer` asks the proposal model for instructions with the
forward template and for variations of a leader with the variant template of iterative APE,
then normalises and de-duplicates them. They are the minimal versions the study needs; where
`engine.propose` provides its own, `engine.run.wiring` prefers it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from engine.llm.client import LLMClient
from engine.llm.results import Completion
from engine.run._base import Proposal, ProposalBatch, Score
from engine.task.metrics import metric_function
from engine.task.types import Example

__all__ = [
    "FORWARD_TEMPLATE",
    "SCORING_TEMPLATE",
    "VARIANT_TEMPLATE",
    "ClientProposer",
    "ClientScorer",
    "normalise_instruction",
]

SCORING_TEMPLATE = "{instruction}\n\nInput: {input}\nOutput:"
FORWARD_TEMPLATE = (
    "I gave a friend an instruction and some inputs. The friend read the instruction and wrote "
    "an output for every one of the inputs. Here are the input-output pairs:\n\n"
    "{demos}The instruction was"
)
CHAT_SUFFIX = "\n\nReply with the instruction only."
VARIANT_TEMPLATE = (
    "Generate a variation of the following instruction while keeping the semantic meaning."
    "\n\nInput: {instruction}\n\nOutput:"
)
SCORING_MAX_TOKENS = 16
_LEAD_IN = re.compile(
    r"^(?:the\s+)?(?:new\s+|revised\s+)?instruction\s+(?:was|is)\s*[:\-]?\s*", re.IGNORECASE
)
_MAX_CHARS = 500


def normalise_instruction(text: str) -> str:
    """One paragraph, no lead-in, no wrapping quotes, no trailing junk; '' when nothing is left."""
    text = text.strip()
    text = text.split("\n\n", 1)[0]
    text = " ".join(text.split())
    text = _LEAD_IN.sub("", text)
    text = text.strip().strip("\"'`“”‘’").strip()
    if text.lower().startswith(("input:", "output:")):
        return ""
    return text[:_MAX_CHARS].strip()


class ClientScorer:
    """Execution-accuracy or log-probability scoring through one client."""

    def __init__(
        self,
        client: LLMClient,
        *,
        metric: str,
        mode: str = "exec",
        api: str = "chat",
        template: str = SCORING_TEMPLATE,
    ) -> None:
        self.client = client
        self.mode = mode
        self.api = api
        self.template = template
        self._metric = metric_function(metric)

    def prompt(self, instruction: str, example: Example) -> str:
        return self.template.format(instruction=instruction, input=example.input)

    async def score(self, instruction: str, example: Example) -> Score:
        prompt = self.prompt(instruction, example)
        if self.mode == "logprob":
            answer = example.outputs[0] if example.outputs else ""
            result = await self.client.continuation_logprob(prompt, " " + answer)
            return Score(
                result.score,
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                latency_s=result.latency_s,
                model=self.client.config.model,
            )
        completion: Completion
        if self.api == "chat":
            completion = await self.client.chat(
                [{"role": "user", "content": prompt}],
                max_tokens=SCORING_MAX_TOKENS,
                temperature=0.0,
                stop=["\n"],
            )
        else:
            completion = await self.client.complete(
                prompt, max_tokens=SCORING_MAX_TOKENS, temperature=0.0, stop=["\n"]
            )
        prediction = completion.text.strip()
        return Score(
            self._metric(prediction, example),
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            latency_s=completion.latency_s,
            model=completion.model,
        )


class ClientProposer:
    """Forward-template proposals from sampled demos, and variants of a leader."""

    def __init__(
        self,
        client: LLMClient,
        demos: Sequence[Example],
        *,
        seed: int,
        demos_per_call: int = 5,
        api: str = "chat",
        temperature: float = 1.0,
    ) -> None:
        if not demos:
            raise ValueError("the proposer needs at least one demo")
        self.client = client
        self.demos = tuple(demos)
        self.demos_per_call = demos_per_call
        self.api = api
        self.temperature = temperature
        self._rng = np.random.default_rng(seed)

    def _demo_text(self) -> str:
        count = min(self.demos_per_call, len(self.demos))
        chosen = self._rng.choice(len(self.demos), size=count, replace=False)
        parts = []
        for index in chosen:
            example = self.demos[int(index)]
            output = example.outputs[0] if example.outputs else ""
            parts.append(f"Input: {example.input}\nOutput: {output}\n\n")
        return "".join(parts)

    async def _ask(self, prompt: str, n: int, *, chat_suffix: str = "") -> Completion:
        if self.api == "chat":
            return await self.client.chat(
                [{"role": "user", "content": prompt + chat_suffix}],
                max_tokens=64,
                temperature=self.temperature,
                n=n,
            )
        return await self.client.complete(
            prompt, max_tokens=64, temperature=self.temperature, n=n, stop=["\n\n"]
        )

    def _batch(self, completion: Completion, origin: str, parent: int | None) -> ProposalBatch:
        seen: set[str] = set()
        proposals = []
        duplicates = rejected = 0
        for text in completion.texts:
            instruction = normalise_instruction(text)
            key = instruction.lower()
            if not instruction:
                rejected += 1
            elif key in seen:
                duplicates += 1
            else:
                seen.add(key)
                proposals.append(Proposal(instruction, origin, parent))
        return ProposalBatch(
            tuple(proposals),
            calls=1,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            generated=len(completion.texts),
            duplicates=duplicates,
            rejected=rejected,
            model=completion.model,
        )

    async def propose(self, count: int) -> ProposalBatch:
        prompt = FORWARD_TEMPLATE.format(demos=self._demo_text())
        completion = await self._ask(prompt, count, chat_suffix=CHAT_SUFFIX)
        return self._batch(completion, "proposal", None)

    async def vary(self, parent_text: str, parent_id: int, n: int) -> ProposalBatch:
        prompt = VARIANT_TEMPLATE.format(instruction=parent_text)
        completion = await self._ask(prompt, n)
        return self._batch(completion, "variant", parent_id)
