"""Examples that share an input: an exact repeat is worth a warning; the same input with other
outputs (or choices) is a contradiction -- the metric cannot score one answer right against both
-- and a task file of the user's is refused for it, naming both places."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from engine.errors import DatasetError
from engine.task.types import Example

__all__ = ["check_duplicates", "check_duplicates_by_hash"]


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
        (repeats if _same(before, example) else conflicts).append((before, example))
    return _said(path, repeats, conflicts, strict)


def check_duplicates_by_hash(
    path: Path | str,
    examples: Sequence[Example],
    inputs: Sequence[int],
    outputs: Sequence[int],
    *,
    strict: bool = True,
) -> tuple[str, ...]:
    """`check_duplicates` of a task file read as a stream, from a hash of each example's
    input and one of its outputs (in the file's order): the same pairs, found by sorting the
    hashes; only the examples a message names are read again (and compared whole, so a
    collision of hashes is never taken for a repeat)."""
    keys = (
        np.frombuffer(inputs, dtype=np.int64) if isinstance(inputs, array) else np.asarray(inputs)
    )
    ordered = np.sort(keys)
    if not (ordered[1:] == ordered[:-1]).any():  # most files: nothing more is computed
        return ()
    order = np.argsort(keys, kind="stable")  # each input's examples in the file's order
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    del ordered
    firsts = order[np.repeat(starts, np.diff(np.r_[starts, order.size]))]
    later = order != firsts  # an example whose input came before: (first, it) is a pair
    pairs = sorted(zip(order[later].tolist(), firsts[later].tolist(), strict=True))
    sums = np.asarray(outputs, dtype=np.int64)
    repeats: list[tuple[Example, Example]] = []
    conflicts: list[tuple[Example, Example]] = []
    for index, first in pairs:
        same = bool(sums[index] == sums[first])
        found = repeats if same else conflicts
        if len(found) > 0:  # only the first of each kind is shown: count the others
            found.append(found[0])
            continue
        before, example = examples[first], examples[index]
        if before.input != example.input:
            continue  # two inputs with one hash
        if same != _same(before, example):
            found = repeats if _same(before, example) else conflicts
        found.append((before, example))
    return _said(path, repeats, conflicts, strict)


def _same(before: Example, example: Example) -> bool:
    return set(before.outputs) == set(example.outputs) and before.choices == example.choices


def _said(
    path: Path | str,
    repeats: list[tuple[Example, Example]],
    conflicts: list[tuple[Example, Example]],
    strict: bool,
) -> tuple[str, ...]:
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
