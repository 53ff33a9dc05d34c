"""Examples that share an input: an exact repeat is worth a warning; the same input with other
outputs (or choices) is a contradiction -- the metric cannot score one answer right against both
-- and a task file of the user's is refused for it, naming both places."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engine.errors import DatasetError
from engine.task.types import Example

__all__ = ["check_duplicates"]


def _where(key: str) -> str:
    return key or "an example"


def check_duplicates(
    path: Path | str, examples: Iterable[Example], *, strict: bool = True
) -> tuple[str, ...]:
    """Warnings about repeated inputs. With `strict`, the same input with other outputs is a
    `DatasetError` naming both examples; without it (published benchmarks, taken as they are)
    that is a warning too."""
    first: dict[str, Example] = {}
    repeats: list[tuple[Example, Example]] = []
    conflicts: list[tuple[Example, Example]] = []
    for example in examples:
        before = first.setdefault(example.input, example)
        if before is example:
            continue
        same = set(before.outputs) == set(example.outputs) and before.choices == example.choices
        (repeats if same else conflicts).append((before, example))
    if conflicts and strict:
        before, example = conflicts[0]
        more = f" ({len(conflicts) - 1} more inputs like it)" if len(conflicts) > 1 else ""
        raise DatasetError(
            f"{path}: {_where(example.key)} and {_where(before.key)} have the same input "
            f"{_shown(example.input)} with different outputs ({_shown(' | '.join(before.outputs))}"
            f" and {_shown(' | '.join(example.outputs))}){more}; keep one, or give both outputs "
            "as a list of accepted answers in one example"
        )
    warnings = []
    for found, what in ((repeats, "repeats"), (conflicts, "has the input of")):
        if not found:
            continue
        before, example = found[0]
        more = f" (and {len(found) - 1} more like it)" if len(found) > 1 else ""
        detail = "" if what == "repeats" else " with other outputs"
        warnings.append(f"{path}: {_where(example.key)} {what} {_where(before.key)}{detail}{more}")
    return tuple(warnings)


def _shown(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 3] + "...")
