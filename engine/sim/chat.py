"""How the simulated world reads a chat: a scoring prompt whose demos came as earlier turns, and
whether a chatty chat model would wrap its answer in a sentence."""

from __future__ import annotations

from engine.serving.protocol import GenerationRequest

__all__ = ["SCORING_INPUT", "talks", "with_earlier_turns"]

SCORING_INPUT = "\n\nInput: "


def with_earlier_turns(request: GenerationRequest) -> str:
    """The scoring prompt of a chat whose demos came as earlier turns: the instruction of the
    first user message, then the input of the last (a bare ``Input: x\nOutput:``)."""
    prompt = request.prompt
    users = [content for role, content in request.messages if role == "user"]
    if len(users) < 2 or SCORING_INPUT in prompt or not prompt.startswith("Input: "):
        return prompt
    split = users[0].rfind(SCORING_INPUT)
    return prompt if split < 0 else users[0][:split] + "\n\n" + prompt


def talks(request: GenerationRequest) -> bool:
    """Would a chatty chat model write a sentence here? Yes, unless a system message asks for
    the output only or an assistant turn already showed a bare output."""
    if request.api != "chat":
        return False
    for role, content in request.messages:
        if role == "assistant" or (role == "system" and "output only" in content.lower()):
            return False
    return True
