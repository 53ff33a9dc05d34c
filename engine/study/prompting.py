"""How the target model is asked to run an instruction on one input (docs/guide.md, "Scoring
formats").

- *completions*: the scoring template (``{instruction}\\n\\nInput: {input}\\nOutput:``); with
  scoring demos, the paper's "instruction + in-context" format: the demos (``Input: ..\\nOutput:
  ..``, the demo template) go between the instruction and the input.
- *chat*, format ``plain``: one user message, the scoring template.
- *chat*, format ``output-only`` (the default): a system message asks for the output alone,
  then the same user message.
- *chat* with scoring demos: the demos are earlier turns, a user message with the instruction
  and the first demo's input answered by an assistant message with its output, then one
  user/assistant pair per further demo (``Input: ..\\nOutput:``), then the input asked for.

Scoring demos come from the demo pool (never the scoring or test pools), drawn once per study
from its seed (`pick_demos`), so every candidate is asked with the same ones. Unless set, chat
scoring shows `CHAT_SCORING_DEMOS` of them (output-only with three demo turns was the format under
which SmolLM2's human instructions scored above 0 on the most tasks, 16 of 24 against 13 for a
plain message: bench/real_model.py --formats, docs/benchmarks.md) and completions none (the
paper's zero-shot setting).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from engine.propose import Templates
from engine.propose.templates import FIRST_SCORING_SYSTEM, fill
from engine.task.types import Example, FieldValues

__all__ = [
    "CHAT_FORMATS",
    "CHAT_SCORING_DEMOS",
    "OUTPUT_ONLY",
    "Demos",
    "ScoringPrompt",
    "pick_demos",
    "scoring_demo_count",
]

CHAT_FORMATS = ("plain", "output-only")
#: the default system message of the output-only format (`Templates.scoring_system`)
OUTPUT_ONLY = Templates().scoring_system


CHAT_SCORING_DEMOS = 3
#: A candidate's own scoring demos (the demo search), or None: the study's.
Demos = tuple[Example, ...] | None


def scoring_demo_count(configured: int | None, api: str) -> int:
    """The scoring demos a study shows: as configured, else the API's default."""
    if configured is not None:
        return configured
    return CHAT_SCORING_DEMOS if api == "chat" else 0


def pick_demos(pool: tuple[Example, ...], count: int, seed: int) -> tuple[Example, ...]:
    """`count` demos drawn without replacement from the demo pool, the same for one seed."""
    count = min(count, len(pool))
    if count <= 0:
        return ()
    rng = np.random.default_rng([seed, 0x5C0])  # a stream apart from the proposer's demos
    return tuple(pool[int(i)] for i in rng.choice(len(pool), size=count, replace=False))


@dataclass(frozen=True, slots=True)
class ScoringPrompt:
    """The prompt (completions) or messages (chat) for one instruction on one input."""

    templates: Templates
    demos: tuple[Example, ...] = ()
    chat_format: str = "output-only"

    def with_demos(self, demos: Demos) -> ScoringPrompt:
        """The same prompt with a candidate's own demos (None: these)."""
        return self if demos is None else dataclasses.replace(self, demos=demos)

    def _question(self, text: str, fields: FieldValues | None = None) -> str:
        """The scoring template without its instruction: the bare ``Input: x\\nOutput:``."""
        return fill(self.templates.scoring, fields, instruction="", input=text).strip()

    def completion(self, instruction: str, text: str, fields: FieldValues | None = None) -> str:
        """The prompt of `instruction` on the input `text` (whose named `fields`, when it has
        them, a template may show one by one)."""
        scoring = self.templates.scoring
        if not self.demos:
            return fill(scoring, fields, instruction=instruction, input=text)
        pairs = [(d.input, d.outputs[0]) for d in self.demos]
        shown = self.templates.demos(pairs, [d.fields for d in self.demos])
        return fill(scoring, fields, instruction=f"{instruction}\n\n{shown}", input=text)

    def messages(
        self, instruction: str, text: str, fields: FieldValues | None = None
    ) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        if self.chat_format == "output-only":
            messages.append({"role": "system", "content": fill(self.templates.scoring_system)})
        first = True
        for demo in self.demos:
            asked = self._ask(instruction, demo.input, demo.fields, first)
            messages.append({"role": "user", "content": asked})
            messages.append({"role": "assistant", "content": demo.outputs[0]})
            first = False
        messages.append({"role": "user", "content": self._ask(instruction, text, fields, first)})
        return messages

    def _ask(self, instruction: str, text: str, fields: FieldValues | None, first: bool) -> str:
        if first:
            return fill(self.templates.scoring, fields, instruction=instruction, input=text)
        return self._question(text, fields)

    def identity(self) -> dict[str, object]:
        """What changes every request (part of the response cache's key)."""
        identity: dict[str, object] = {
            "chat_format": self.chat_format,
            "demos": [[d.input, d.outputs[0]] for d in self.demos],
        }
        system = self.templates.scoring_system
        if self.chat_format == "output-only" and system != FIRST_SCORING_SYSTEM:
            identity["system"] = system  # the first default keeps the keys of older studies
        return identity
