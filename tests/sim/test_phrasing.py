"""The simulated proposal model writes instructions a person could have written: its wordings
are the task's own instruction with whole phrases swapped for ones that read right in the same
place, a polite lead-in and closing sentences -- never a verb where a noun belongs ("Give the
write that belongs to each input."), a sentence said twice, or a lead-in before a clause that
cannot follow it. The proposals are the first thing `make demo` shows a new user."""

from __future__ import annotations

import random
import re

import pytest

from engine.sim.phrasing import cores_of, proposal_text, variant_text
from engine.task.builtin import builtin_task, builtin_task_names

#: What garbled wordings look like: a verb after an article or a possessive, a phrase where it
#: does not fit ("provided two numbers", "of both"), a lead-in glued to a "Given ..." clause.
GARBLED = (
    r"\b(the|a|an|its|their|into the)\s+(write|give|state|add|reply|respond)\b",
    r"\bof both\b",
    r"\b(please|carefully|to|and|is to)\s+(given|provided)\b",
    r"\bprovided\b(?! with)",
    r"\binitial\b(?! letter)",
    r"\bbackwards order\b",
    r"\bin reverse order order\b",
)


def wordings(cores: list[str], seed: int, count: int = 300) -> list[str]:
    """`count` proposals from `cores`, each followed by three generations of variants."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        text = proposal_text(cores, rng)
        texts.append(text)
        for _ in range(3):
            text = variant_text(text, rng)
            texts.append(text)
    return texts


CORES = {"no task": cores_of(None, None)} | {
    name: cores_of(builtin_task(name).human_instruction, builtin_task(name).description)
    for name in builtin_task_names()
}


@pytest.mark.parametrize("task", list(CORES))
def test_simulated_proposals_read_as_english(task: str) -> None:
    for text in wordings(CORES[task], seed=len(task)):
        for pattern in GARBLED:
            assert not re.search(pattern, text, re.IGNORECASE), (pattern, text)
        assert text[:1].isupper() and text.endswith((".", ")")), text
        assert "  " not in text, text
        sentences = [s.strip().lower() for s in text.split(".") if s.strip()]
        assert len(sentences) == len(set(sentences)), f"a sentence said twice: {text}"


def test_the_generic_wordings_keep_their_nouns() -> None:
    """The proposals of a task the simulator does not know (a task file with --backend sim):
    "the output" becomes "the result", never "the write" or "the give"."""
    texts = wordings(CORES["no task"], seed=0, count=2000)
    assert any("the result" in text for text in texts)  # the noun phrase is still varied
    assert not [t for t in texts if re.search(r"\bthe (write|give|state)\b", t, re.IGNORECASE)]
