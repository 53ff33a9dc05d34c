"""The simulator as a judge model, with known answers.

A judge prompt (the rubrics of `engine.study.judging`) holds an ``Answer:`` line and a
``Reference answers:`` line (references separated by " | "). The simulated judge replies
"yes" when the answer, normalised as the metrics normalise it, equals one of the references,
"no" otherwise; a prompt asking for a number "from L to H" gets H or L instead. A judge's
verdict is thus exact match, which lets tests check the judge scorer against the metric.
"""

from __future__ import annotations

import re

from engine.task.metrics import normalise

__all__ = ["judge_reply"]

_ANSWER = re.compile(r"^Answer: ?(.*)$", re.MULTILINE)
_REFERENCES = re.compile(r"^Reference answers: ?(.*)$", re.MULTILINE)
_SCALE = re.compile(r"from (-?\d+) to (-?\d+)", re.IGNORECASE)


def judge_reply(prompt: str) -> str | None:
    """The simulated judge's reply, or None when `prompt` is not a judge prompt."""
    answer = _ANSWER.search(prompt)
    references = _REFERENCES.search(prompt)
    if answer is None or references is None:
        return None
    said = normalise(answer.group(1))
    right = bool(said) and any(
        said == normalise(reference) for reference in references.group(1).split(" | ")
    )
    scale = _SCALE.search(prompt)
    if scale is not None:
        return scale.group(2) if right else scale.group(1)
    return "yes" if right else "no"
