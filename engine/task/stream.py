"""Task files read as a stream (JSON lines, CSV): a study keeps a few hundred examples of a file
that may hold millions, so the file is read through once and only what is needed to find an
example again is kept.

The first reading checks every example as it comes (its fields, its size, UTF-8, repeated keys),
hashes it into the task's fingerprint (`engine.task.fingerprint`, for each metric the task may
be scored by), and keeps per example where it starts in the file, its line, and a hash of its
input and one of its outputs (the check for one input with two outputs runs on those at the
end): 28 bytes an example, in arrays. `ExampleFile` is then the examples as a sequence: its
length is known, and an example asked for is read again from its place (the split asks for the
few hundred of the pools: `engine.task.split`). A file changed since it was read is refused
rather than read at the wrong places.
"""

from __future__ import annotations

import csv
import hashlib
import os
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from engine.errors import DatasetError
from engine.task.fingerprint import example_bytes, header_bytes
from engine.task.reading import iter_lines_at
from engine.task.types import METRICS, Example

__all__ = ["ExampleFile", "Scan", "same_kind"]

_CHUNK_EXAMPLES = 4096  # examples hashed into the fingerprints at a time
_AGAIN = 1 << 14  # bytes read at a time to read one example again

#: What reads the example whose record starts at an offset: (path, offset, line) -> Example.
ReadAt = Callable[[Path, int, int], Example]


@dataclass(slots=True)
class Scan:
    """What the first reading keeps, one entry per example in the file's order."""

    header: bytes = b""  # the task's fingerprint header without its metric: name, human
    name: str = ""
    human: str | None = None
    offsets: array[int] = field(default_factory=lambda: array("q"))
    lines: array[int] = field(default_factory=lambda: array("q"))
    inputs: array[int] = field(default_factory=lambda: array("q"))  # hash of the input
    outputs: array[int] = field(default_factory=lambda: array("q"))  # of outputs and choices
    choices: bool = False  # some example has choices (multiple choice)
    fields: dict[str, None] = field(default_factory=dict)  # the inputs' field names, in order
    where: str = ""  # the file, for an error
    _kind: tuple[bool, int] | None = None  # the first example: fields or not, and its line
    _hashes: dict[str, Any] = field(default_factory=dict)
    _pending: list[bytes] = field(default_factory=list)

    def start(self, name: str, human: str | None, where: str = "") -> None:
        self.name, self.human, self.where = name, human, where
        self._hashes = {
            metric: hashlib.sha256(header_bytes(name, metric, human)) for metric in METRICS
        }

    def add(self, example: Example, offset: int, line: int) -> None:
        self.offsets.append(offset)
        self.lines.append(line)
        self.inputs.append(hash(example.input))
        self.outputs.append(hash((frozenset(example.outputs), example.choices)))
        if example.choices is not None:
            self.choices = True
        if self._kind is None:
            self._kind = (example.fields is not None, line)
        elif self._kind[0] != (example.fields is not None):
            raise DatasetError(same_kind(self.where, line, self._kind[0], f"line {self._kind[1]}"))
        for name, _ in example.fields or ():
            self.fields.setdefault(name)
        self._pending.append(example_bytes(example))
        if len(self._pending) >= _CHUNK_EXAMPLES:
            self._flush()

    def _flush(self) -> None:
        chunk = b"".join(self._pending)
        for hashed in self._hashes.values():
            hashed.update(chunk)
        self._pending.clear()

    def fingerprints(self) -> dict[bytes, str]:
        """The task's fingerprint for each metric it may be scored by, by header."""
        self._flush()
        return {
            header_bytes(self.name, metric, self.human): hashed.hexdigest()[:16]
            for metric, hashed in self._hashes.items()
        }


def same_kind(where: str, line: int | str, fields: bool, first: str) -> str:
    """What is wrong with an example whose input is not of the kind of the first one's."""
    kinds = ("text", "an object of named fields")
    at = f"line {line}" if isinstance(line, int) else line
    return (
        f"{where}: {at}: the input is {kinds[not fields]}, but {first}'s is {kinds[fields]}; "
        "give every example's input the same way"
    )


class ExampleFile(Sequence[Example]):
    """The examples of a task file read as a stream (`Scan`), as a sequence: an example is
    read again from its place in the file when asked for."""

    def __init__(self, path: Path, scan: Scan, read_at: ReadAt) -> None:
        self.path = path
        self._offsets = scan.offsets
        self._lines = scan.lines
        self._read_at = read_at
        self._fingerprints = scan.fingerprints()
        self._stamp = _stamp(path)

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, index: int) -> Example: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Example, ...]: ...

    def __getitem__(self, index: int | slice) -> Example | tuple[Example, ...]:
        if isinstance(index, slice):
            return tuple(self._read(i) for i in range(*index.indices(len(self))))
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self._read(index % len(self))

    def __iter__(self) -> Iterator[Example]:
        for index in range(len(self)):
            yield self._read(index)

    def __repr__(self) -> str:
        return f"ExampleFile({str(self.path)!r}, {len(self)} examples)"

    def fingerprint(self, header: bytes) -> str | None:
        """The task's fingerprint when `header` (name, metric, human) is one the first reading
        hashed with; None otherwise."""
        return self._fingerprints.get(header)

    def _read(self, index: int) -> Example:
        if _stamp(self.path) != self._stamp:
            raise DatasetError(
                f"{self.path}: the file changed since it was read; load the task again"
            )
        return self._read_at(self.path, self._offsets[index], self._lines[index])


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError as error:
        raise DatasetError(f"{path}: cannot read ({error.strerror})") from None
    return stat.st_size, stat.st_mtime_ns


# -- JSON lines and CSV, read as a stream -----------------------------------------------------

#: One example from a line's text: (text, line number) -> Example.
ParseLine = Callable[[str, int], Example]


def scan_lines(path: Path, parse: ParseLine, scan: Scan) -> None:
    """Read a JSON lines file through once into `scan`."""
    for number, offset, line in iter_lines_at(path):
        if line.strip():
            scan.add(parse(line, number), offset, number)


def line_reader(parse: ParseLine) -> ReadAt:
    def read_at(path: Path, offset: int, line: int) -> Example:
        for number, _, text in iter_lines_at(path, offset, line, _AGAIN):
            return parse(text, number)
        raise DatasetError(f"{path}: line {line}: not there any more; load the task again")

    return read_at


#: One example from a CSV row: (row, line number) -> Example.
ParseRow = Callable[[dict[str, Any], int], Example]


def scan_csv(
    path: Path, dialect: str, parse: ParseRow, scan: Scan, check: Callable[[list[str]], None]
) -> list[str]:
    """Read a CSV file through once into `scan`; `check` sees the header first. The header."""
    starts: list[int] = []  # where each line the reader took since the last row starts

    def lines() -> Iterator[str]:
        for _, offset, text in iter_lines_at(path):
            starts.append(offset)
            yield text

    reader = csv.DictReader(lines(), dialect=dialect)
    try:
        header = list(reader.fieldnames or [])
        check(header)
        starts.clear()
        for row in reader:
            scan.add(parse(row, reader.line_num), starts[0], reader.line_num)
            starts.clear()
    except csv.Error as error:
        raise DatasetError(f"{path}: line {reader.line_num}: not valid CSV ({error})") from None
    return header


def csv_reader(header: list[str], dialect: str, parse: ParseRow) -> ReadAt:
    def read_at(path: Path, offset: int, line: int) -> Example:
        lines = (text for _, _, text in iter_lines_at(path, offset, line, _AGAIN))
        reader = csv.DictReader(lines, fieldnames=header, dialect=dialect)
        try:
            row = next(reader)
        except (StopIteration, csv.Error):
            raise DatasetError(
                f"{path}: line {line}: not there any more; load the task again"
            ) from None
        return parse(row, line)

    return read_at
