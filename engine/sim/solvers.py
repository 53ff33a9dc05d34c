"""The answers of the numeric built-in tasks for any input, whatever seed drew it.

A built-in task's seed picks which numbers it holds (the word tasks hold the same words in every
order), so a simulator started with one seed would not know the examples of a study with
another, and would answer "I do not know." to each. For these tasks the answer follows from
the input, so the simulator knows every seed's examples.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from engine.task.builtin import number_to_words

__all__ = ["SOLVERS"]

_TWO = re.compile(r"^(\d{1,2}) (\d{1,2})$")
_LARGER = re.compile(r"^(\d{1,3}), (\d{1,3})$")
_NUMBER = re.compile(r"^\d{1,4}$")


def _sum(text: str) -> str | None:
    match = _TWO.match(text)
    return str(int(match[1]) + int(match[2])) if match else None


def _difference(text: str) -> str | None:
    match = _TWO.match(text)
    if not match or int(match[1]) < int(match[2]):
        return None  # the task writes the larger first
    return str(int(match[1]) - int(match[2]))


def _larger(text: str) -> str | None:
    match = _LARGER.match(text)
    if not match or match[1] == match[2]:
        return None
    return str(max(int(match[1]), int(match[2])))


def _words(text: str) -> str | None:
    return number_to_words(int(text)) if _NUMBER.match(text) else None


#: Built-in task name -> the accepted output for an input of that task's form (None: not one).
SOLVERS: dict[str, Callable[[str], str | None]] = {
    "sum": _sum,
    "difference": _difference,
    "larger_number": _larger,
    "num_to_words": _words,
}
