"""Reading a task file's text: UTF-8 with or without a byte-order mark, line by line.

Line-based formats (JSON lines, CSV) are read as a stream, one line at a time, so a large file
never sits in memory twice; JSON documents are read whole (they are parsed whole). A byte that is
not UTF-8 is reported by its line and column, and a repeated key in a JSON object by its line.
Reference: RFC 8259 (JSON), section 8.1: a parser may ignore a leading byte-order mark.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import DatasetError
from engine.nesting import json_depth_problem

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_TEXT_CHARS",
    "first_lines",
    "iter_lines",
    "iter_lines_at",
    "parse_json",
    "read_text",
]

_BOM = codecs.BOM_UTF8
_BLOCK = 1 << 20

#: The most characters an example's input, or one of its outputs, may hold: far past any
#: prompt a study sends, and the journal keeps no longer text.
MAX_TEXT_CHARS = 100_000
#: The longest line of a line-based task file: an example at its largest, and then some.
MAX_LINE_BYTES = 1 << 23

#: Presentation settings of BIG-Bench files that the engine does not read; a duplicate of one is
#: not an error (timedial's task.json has two), and the last one wins as in Python's json.
_IGNORED_DUPLICATES = frozenset(
    {
        "append_choices_to_input",
        "canary",
        "keywords",
        "preferred_score",
        "few_shot_example_separator",
    }
)


def _open(path: Path) -> Any:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such task file") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read ({error.strerror})") from None


def _decode(path: Path, raw: bytes, number: int) -> str:
    """One line's bytes as text; a byte that is not UTF-8 is named by line and column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        column = len(raw[: error.start].decode("utf-8", "replace")) + 1
        raise DatasetError(
            f"{path}: line {number}, column {column}: byte 0x{raw[error.start]:02x} is not "
            "UTF-8; save the file as UTF-8"
        ) from None


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text with its line ending) of each line, read as a stream in blocks of
    1 MiB; a leading byte-order mark is dropped, and a line longer than `MAX_LINE_BYTES` is
    refused with its number."""
    for number, _, line in iter_lines_at(path):
        yield number, line


def iter_lines_at(
    path: Path, start: int = 0, first: int = 1, block_size: int = _BLOCK
) -> Iterator[tuple[int, int, str]]:
    """As `iter_lines`, with where each line starts in the file (its byte offset), from
    offset `start` on (numbering its line `first`): a stream can be read again from there
    (in smaller blocks, `block_size`, to read a line or two)."""
    number, offset = first - 1, start
    with _open(path) as file:
        file.seek(start)
        rest = b""
        while True:
            try:
                block = file.read(block_size)
            except OSError as error:
                raise DatasetError(f"{path}: cannot read ({error.strerror})") from None
            if offset == 0 and not rest and block.startswith(_BOM):
                block, offset = block[len(_BOM) :], len(_BOM)
            data = rest + block
            cut = data.rfind(b"\n") + 1 if block else len(data)
            whole, rest = data[:cut], data[cut:]
            if len(rest) > MAX_LINE_BYTES:
                line_number = number + whole.count(b"\n") + 1
                raise DatasetError(
                    f"{path}: line {line_number}: longer than "
                    f"{MAX_LINE_BYTES:,} bytes; an example holds at most {MAX_TEXT_CHARS:,} "
                    "characters of input and of each output"
                )
            for line, size in _decoded_lines(path, whole, number):
                number += 1
                yield number, offset, line
                offset += size
            if not block:
                return


def _decoded_lines(path: Path, data: bytes, before: int) -> list[tuple[str, int]]:
    """The lines of `data` (whole lines, after line `before`), each with its newline, and
    the bytes each takes in the file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # find the line, to name it
        for number, raw in enumerate(data.split(b"\n"), start=before + 1):
            _decode(path, raw, number)
        raise
    lines = text.split("\n")
    last = lines.pop()  # empty after a final newline; else a last line without one
    if len(text) == len(data):  # ASCII: a character is a byte
        sizes = [len(line) + 1 for line in lines]
    else:
        sizes = [len(raw) + 1 for raw in data.split(b"\n")[: len(lines)]]
    decoded = [(line + "\n", size) for line, size in zip(lines, sizes, strict=True)]
    return decoded + ([(last, len(data) - sum(sizes))] if last else [])


def first_lines(path: Path) -> tuple[str, bool]:
    """The first non-blank line of the file (stripped) and whether another non-blank line
    follows: enough to tell JSON lines from a JSON document without reading the whole file."""
    first = ""
    for _, line in iter_lines(path):
        if not line.strip():
            continue
        if first:
            return first, True
        first = line.strip()
    if not first:
        raise DatasetError(f"{path}: the file is empty; expected examples with input and output")
    return first, False


def read_text(path: Path) -> str:
    """The whole file as text (for JSON documents); each line is checked as UTF-8."""
    text = "".join(line for _, line in iter_lines(path))
    if not text.strip():
        raise DatasetError(f"{path}: the file is empty; expected examples with input and output")
    return text


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen and key not in _IGNORED_DUPLICATES:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicates)
_PLAIN = json.JSONDecoder().decode
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def _duplicate_key_line(text: str, key: str) -> int | None:
    """The line where `key` repeats inside one JSON object (the slow path, run only on error)."""
    stack: list[set[str] | None] = []  # a set of keys per open object, None per open array
    expecting_key = False
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token == "{":
            stack.append(set())
            expecting_key = True
        elif token == "[":
            stack.append(None)
        elif token in ("}", "]"):
            if stack:
                stack.pop()
            expecting_key = False
        elif token == ",":
            expecting_key = bool(stack) and stack[-1] is not None
        elif token.startswith('"') and expecting_key and stack and stack[-1] is not None:
            expecting_key = False
            try:
                name = json.loads(token)
            except json.JSONDecodeError:
                return None
            keys = stack[-1]
            if name == key and name in keys:
                return text.count("\n", 0, match.start()) + 1
            keys.add(name)
    return None


def _flat_object(text: str) -> dict[str, Any] | None:
    """A JSON line that is an object whose keys cannot repeat, parsed by the C decoder alone:
    each key of an object is followed by ``":``, so when the text holds that pair exactly as
    many times as the object has keys, there is no other object in it and no key twice. None
    otherwise (or when it is not JSON): the checking decoder then says what is wrong."""
    try:
        value = _PLAIN(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict) and text.count('":') == len(value):
        return value
    return None


def parse_json(path: Path, text: str, line: int | None = None) -> Any:
    """Parse JSON; a syntax error, a repeated key in an object or a nesting deeper than
    `engine.nesting.MAX_DEPTH` names the file and line (`line`: the file's line that `text`
    is, for JSON lines)."""
    deep = json_depth_problem(text)
    if deep is not None:
        where = f"line {line}: " if line is not None else ""
        raise DatasetError(f"{path}: {where}{deep}") from None
    if line is not None:
        flat = _flat_object(text)
        if flat is not None:
            return flat
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as error:
        where = f"line {line}" if line is not None else f"line {error.lineno} column {error.colno}"
        raise DatasetError(f"{path}: {where}: not valid JSON ({error.msg})") from None
    except _DuplicateKey as duplicate:
        found = line if line is not None else _duplicate_key_line(text, duplicate.key)
        where = f"line {found}: " if found is not None else ""
        raise DatasetError(
            f"{path}: {where}duplicate key {duplicate.key!r} in a JSON object; "
            "the keys of an object must be unique (rename or remove one)"
        ) from None
