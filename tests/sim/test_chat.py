"""The simulator's chatty chat model: when it wraps its answer in a sentence."""

from __future__ import annotations

import pytest

from engine.propose.templates import FIRST_SCORING_SYSTEM, Templates
from engine.serving.protocol import GenerationRequest
from engine.sim.chat import talks


def _asked(*messages: tuple[str, str], api: str = "chat") -> GenerationRequest:
    return GenerationRequest(api=api, model="sim-1", prompt=messages[-1][1], max_tokens=16,
                             messages=messages)  # fmt: skip


@pytest.mark.parametrize("system", [Templates().scoring_system, FIRST_SCORING_SYSTEM,
                                    "Give only the output."])  # fmt: skip
def test_a_system_message_asking_for_the_output_alone_ends_the_sentences(system: str) -> None:
    assert not talks(_asked(("system", system), ("user", "Add.\n\nInput: 1 2\nOutput:")))


def test_otherwise_a_chat_model_talks_and_a_completions_model_does_not() -> None:
    user = ("user", "Add.\n\nInput: 1 2\nOutput:")
    assert talks(_asked(user))
    assert talks(_asked(("system", "Be helpful and brief."), user))
    assert not talks(_asked(("user", "Add.\n\nInput: 3 4"), ("assistant", "7"), user))
    assert not talks(_asked(user, api="completions"))
