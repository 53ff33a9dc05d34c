"""How the simulated proposal model reads a reflection or a merge prompt and writes its answer.

The prompts are recognised by the default templates' opening lines (`engine.propose.templates`:
"A language model was given this instruction for a task:", "Two instructions were written
for the same task."). A reflection's answer is a diagnosis naming one wrong answer, then the
revised instruction: the parent's instruction with a sentence about the errors it saw (a
sentence it wrote in an earlier revision is replaced, so revisions do not grow without end).
The instruction comes in the asked-for form most of the time, and now and then as real models
write it -- a bold label, a heading over it, a fenced block, or not at all (a diagnosis only),
so the engine's reading and its rejections are exercised. A merge keeps the first parent's
instruction and takes over a sentence of the second's.
"""

from __future__ import annotations

import random
import re

from engine.sim.phrasing import SUFFIXES

__all__ = [
    "MERGE_MARK",
    "REFLECT_MARK",
    "merge_answer",
    "merge_text",
    "read_merge",
    "read_reflection",
    "reflection_answer",
    "reflection_text",
]

REFLECT_MARK = "a language model was given this instruction for a task:"
MERGE_MARK = "two instructions were written for the same task."
_REFLECTED = re.compile(r"^(.*?[.!?])\s+(?:For example, the answer|Check each answer:|Do not "
                        r"answer|Give the answer in the form)\b.*$", re.DOTALL)  # fmt: skip
_WRONG = re.compile(  # an input of named fields shows them without "Input:"
    r"(?:^|\n\n)(?:Input: )?((?:(?!\n\n).)*?)\nExpected output: (.*?)\nThe model's answer "
    r"\(wrong\): (.*?)(?=\n\n|\Z)",
    re.DOTALL,
)
_PARENT = re.compile(r"for a task:\n\n(.*?)\n\nHere are some of its answers", re.DOTALL)
_PAIR = re.compile(r"Instruction A: (.*?)\n\nInstruction B: (.*?)\n\nInputs only", re.DOTALL)
Wrong = tuple[str, str, str]  # input, expected output, the model's answer


def read_reflection(prompt: str) -> tuple[str, list[Wrong]] | None:
    """(the parent's instruction, the wrong answers shown) of a reflection prompt."""
    found = _PARENT.search(prompt)
    if found is None:
        return None
    wrong = [(x.strip(), y.strip(), a.strip()) for x, y, a in _WRONG.findall(prompt)]
    return " ".join(found.group(1).split()), wrong


def read_merge(prompt: str) -> tuple[str, str] | None:
    """The two parents' instructions of a merge prompt."""
    found = _PAIR.search(prompt)
    if found is None:
        return None
    return " ".join(found.group(1).split()), " ".join(found.group(2).split())


def _short(text: str, width: int = 24) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _core(instruction: str) -> str:
    """The instruction without the sentence an earlier revision added."""
    found = _REFLECTED.match(instruction)
    return found.group(1) if found else instruction


def reflection_text(parent: str, wrong: list[Wrong], rng: random.Random) -> str:
    """The revised instruction: the parent's, with a sentence about one error it saw."""
    core = _core(parent)
    if not wrong:
        return core + SUFFIXES[rng.randrange(len(SUFFIXES))]
    x, y, a = wrong[rng.randrange(len(wrong))]
    x, y, a = _short(x), _short(y), _short(a)
    sentences = (
        f"For example, the answer for {x!r} is {y!r}.",
        f"Check each answer: for {x!r} it must be {y!r}.",
        f"Do not answer {a!r} when the answer is {y!r}.",
        f"Give the answer in the form {y!r}, with nothing around it.",
    )
    return f"{core} {sentences[rng.randrange(len(sentences))]}"


def reflection_answer(revised: str, wrong: list[Wrong], rng: random.Random, api: str) -> str:
    """A reflection's whole answer: a diagnosis, then the revision in one of the forms models
    write it in."""
    if wrong:
        x, y, a = wrong[0]
        diagnosis = (
            f"The model answered {_short(a)!r} where {_short(y)!r} was expected for "
            f"{_short(x)!r}; the instruction does not say what the answer must look like."
        )
    else:
        diagnosis = "The model's answers were right; the instruction could be more precise."
    lead = " " if api == "completions" else "Diagnosis: "
    roll = rng.random()
    if roll < 0.7:
        body = f"Instruction: {revised}"
    elif roll < 0.8:
        body = f"**Revised instruction:** {revised}"
    elif roll < 0.88:
        body = f"### Improved instruction\n\n{revised}"
    elif roll < 0.94:
        body = f"```\n{revised}\n```"
    else:
        body = "I would need more examples to write a better one."
    return f"{lead}{diagnosis}\n\n{body}"


def merge_text(first: str, second: str, rng: random.Random) -> str:
    """The first parent's instruction with a sentence of the second's it lacks (or, when it
    lacks none, a closing sentence of the phrasing's)."""
    core = _core(first)
    taken = [s for s in re.split(r"(?<=[.!?])\s+", _core(second)) if s and s not in core]
    if taken:
        return f"{core} {taken[rng.randrange(len(taken))]}"
    missing = [s for s in SUFFIXES if s not in core]
    return core + (missing[rng.randrange(len(missing))] if missing else " Be precise.")


def merge_answer(merged: str, rng: random.Random, api: str) -> str:
    if api == "completions":
        return " " + merged
    return f"Instruction: {merged}" if rng.random() < 0.9 else f'"{merged}"'
