"""How the simulated world reads a chat: a scoring prompt whose demos came as earlier turns, and
whether a chatty chat model would wrap its answer in a sentence."""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass

from engine.serving.protocol import GenerationRequest

__all__ = ["SCORING_INPUT", "Question", "read_question", "talks", "with_earlier_turns"]

SCORING_INPUT = "\n\nInput: "
_SCORING_OUTPUT = "\nOutput:"


@dataclass(frozen=True, slots=True)
class Question:
    instruction: str
    input: str
    tail: str  # the text after "Output:" (the answer being scored, for echo)
    tail_start: int  # its offset in the prompt


def read_question(prompt: str, known: Container[str]) -> Question | None:
    """The instruction and input of a scoring prompt: after the last ``Input:``, or -- an input
    of named fields, labelled one a line -- the block before the last ``Output:`` when it is an
    input in `known`."""
    end = -1
    split = prompt.rfind(SCORING_INPUT)
    if split >= 0:
        start = split + len(SCORING_INPUT)
        end = prompt.find(_SCORING_OUTPUT, start)
    else:
        end = prompt.rfind(_SCORING_OUTPUT)
        split = prompt.rfind("\n\n", 0, end) if end >= 0 else -1
        start = split + 2
        if split < 0 or prompt[start:end].strip() not in known:
            return None
    if end < 0:
        return None
    tail_start = end + len(_SCORING_OUTPUT)
    return Question(prompt[:split], prompt[start:end], prompt[tail_start:], tail_start)


def with_earlier_turns(request: GenerationRequest) -> str:
    """The scoring prompt of a chat whose demos came as earlier turns: the instruction of the
    first user message, then the input of the last (a bare ``Input: x\nOutput:``, or named
    fields, one a line, before ``Output:``)."""
    prompt = request.prompt
    users = [content for role, content in request.messages if role == "user"]
    if len(users) < 2 or SCORING_INPUT in prompt:
        return prompt
    if prompt.startswith("Input: "):
        split = users[0].rfind(SCORING_INPUT)
    elif "\n\n" not in prompt and prompt.rstrip().endswith("\nOutput:"):  # named fields
        split = users[0].rfind("\n\n")
    else:
        return prompt
    return prompt if split < 0 else users[0][:split] + "\n\n" + prompt


#: a system message that asks for the output alone
_OUTPUT_ALONE = re.compile(r"\boutput only\b|\b(?:just|only) the output\b", re.IGNORECASE)


def talks(request: GenerationRequest) -> bool:
    """Would a chatty chat model write a sentence here? Yes, unless a system message asks for
    the output alone ("the output only", "just the output") or an assistant turn already showed
    a bare output."""
    if request.api != "chat":
        return False
    for role, content in request.messages:
        if role == "assistant" or (role == "system" and _OUTPUT_ALONE.search(content)):
            return False
    return True
