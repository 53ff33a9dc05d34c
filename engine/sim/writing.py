"""What the simulated world writes when asked for instructions: proposals from demos (forward
or insert, chat or completions), variants of an instruction, reflections and merges. Each is
registered with the world, so that its quality follows from its task or its parents
(`engine.sim.world`, `engine.sim.derived`)."""

from __future__ import annotations

import hashlib
import random
import re
from typing import TYPE_CHECKING

from engine.serving.protocol import GenerationRequest
from engine.sim.phrasing import completion_form, cores_of, decorate, proposal_text, variant_text
from engine.sim.reflection import (
    merge_answer,
    merge_text,
    read_merge,
    read_reflection,
    reflection_answer,
    reflection_text,
)

if TYPE_CHECKING:
    from engine.sim.world import World

__all__ = ["GENERIC_ANSWER", "Writer"]

_DEMO = re.compile(r"Input: (.*?)\nOutput: ?(.*?)(?=\n\nInput: |\n\n|\Z)", re.DOTALL)
_SEEN_LIMIT = 100_000
GENERIC_ANSWER = "OK. This is the simulated LLM server; it does not recognise this prompt."


class Writer:
    """Writes instructions for `world`: the same prompt asked again gets new samples."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._seen: dict[str, int] = {}

    def _rng(self, request: GenerationRequest) -> random.Random:
        """Proposals sample: the same prompt asked again gets new samples (deterministic in the
        order asked), unless temperature is 0 or the request gives a seed."""
        text = request.prompt + request.suffix
        if request.temperature == 0 or request.seed is not None:
            occurrence = 0
        else:
            occurrence = self._seen.get(text, 0)
            if len(self._seen) > _SEEN_LIMIT:
                self._seen.clear()
            self._seen[text] = occurrence + 1
        digest = hashlib.blake2b(
            "\x1f".join((self._world.seed, text, str(occurrence), str(request.seed))).encode(),
            digest_size=8,
        ).digest()
        return random.Random(int.from_bytes(digest, "big"))

    def _task(self, prompt: str) -> int | None:
        votes: dict[int, int] = {}
        inputs = [x for x, _ in _DEMO.findall(prompt)]
        if not inputs:  # demos of named fields: each block's lines before its output
            blocks = (block.partition("\nOutput: ") for block in prompt.split("\n\n"))
            inputs = [x for x, mark, _ in blocks if mark]
        for x in inputs:
            for t, _e in self._world.examples_of(x.strip()):
                votes[t] = votes.get(t, 0) + 1
        if not votes:
            return None
        return max(votes, key=lambda t: (votes[t], -t))

    def proposals(self, request: GenerationRequest) -> list[str]:
        rng = self._rng(request)
        t = self._task(request.prompt + request.suffix)
        cores = self._world.tasks[t].cores if t is not None else cores_of(None, None)
        texts = []
        for _ in range(request.n):
            text = proposal_text(cores, rng)
            # written from the demos: a variant written later with the same words is not its
            # parent's (the quality of a proposal is its own, scored yet or not)
            self._world.derivations.fixed.add(self._world.key(text))
            if t is not None:
                self._world.origin.setdefault(self._world.key(text), t)
            if request.api == "completions":
                completed = completion_form(text, rng)
                if request.suffix:  # "I instructed my friend to" + the verb phrase
                    completed = " " + completed.removeprefix(" to ")
                self._world.derivations.fixed.add(self._world.key(completed))
                if t is not None:
                    self._world.origin.setdefault(self._world.key(completed), t)
                texts.append(completed)
            else:
                texts.append(decorate(text, rng))
        return texts

    def variants(self, request: GenerationRequest) -> list[str]:
        prompt = request.prompt
        start = prompt.find("Input:")
        end = prompt.rfind("Output:")
        if start < 0 or end <= start:
            return [GENERIC_ANSWER] * request.n
        parent = prompt[start + len("Input:") : end].strip()
        rng = self._rng(request)
        texts = []
        for _ in range(request.n):
            child = variant_text(parent, rng)
            self._world.register_variant(child, parent)
            texts.append((" " if request.api == "completions" else "") + child)
        return texts

    def reflections(self, request: GenerationRequest) -> list[str]:
        """Reflections (one parent, the wrong answers shown) or merges (two parents)."""
        rng, texts = self._rng(request), []
        reflection, merge = read_reflection(request.prompt), read_merge(request.prompt)
        for _ in range(request.n if reflection or merge else 0):
            if reflection is not None:
                child = reflection_text(*reflection, rng)
                self._world.register_derived(child, "reflect", reflection[:1], len(reflection[1]))
                texts.append(reflection_answer(child, reflection[1], rng, request.api))
            elif merge is not None:
                child = merge_text(*merge, rng)
                self._world.register_derived(child, "merge", merge)
                texts.append(merge_answer(child, rng, request.api))
        return texts or [GENERIC_ANSWER] * request.n
