"""Values of the task layer: an `Example` and a `Task`.

A task is what APE optimises an instruction for: examples of inputs with their accepted outputs,
the metric that compares a prediction with them, and, when the benchmark has one, the human
instruction that serves as the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BINARY_METRICS", "METRICS", "Example", "FieldValues", "Task"]

#: Metric names understood by `engine.task.metrics`.
METRICS = ("exact_match", "contains", "f1", "exact_set", "multiple_choice")
#: the metrics whose every reward is 0 or 1 (the scheduler then uses exact bounds)
BINARY_METRICS = frozenset({"exact_match", "contains", "exact_set", "multiple_choice"})
#: An input of named fields: (name, value) pairs in the example's order (`engine.task.fields`).
FieldValues = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Example:
    """One input and the outputs accepted for it (a prediction is right if it matches any).

    `choices` is set for multiple-choice tasks. `key` says where the example came from (the
    file's line number or example key) so that errors and reports can point at it. An input of
    named fields keeps them in `fields`; its `input` is then the fields labelled, one a line,
    as the models see them (`engine.task.fields`).
    """

    input: str
    outputs: tuple[str, ...]
    choices: tuple[str, ...] | None = None
    key: str = ""
    fields: FieldValues | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """A named set of examples with its metric.

    `test_examples` is set when the task ships its own held-out test file (instruction
    induction's `execute` split); otherwise the test pool is split off `examples`.
    """

    name: str
    #: a tuple, or a task file read as a stream (`engine.task.stream.ExampleFile`): its
    #: examples are read again from the file when asked for
    examples: Sequence[Example]
    metric: str = "exact_match"
    human_instruction: str | None = None
    description: str | None = None
    test_examples: tuple[Example, ...] | None = None
    source: str = field(default="", compare=False)
    #: what the loader noticed but accepted (exact repeats of an example), for the user to see
    warnings: tuple[str, ...] = field(default=(), compare=False)
    #: the names of the input's fields, in the order they first appear (none: one text)
    fields: tuple[str, ...] = ()
    #: the checks of an answer a task file declares, as written (decoded JSON: a list of
    #: tables, each with its kind); the settings decode them (`engine.settings.checks`)
    checks: tuple[Any, ...] | None = None
