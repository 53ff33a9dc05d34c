"""How deep a JSON or TOML text nests, found before it is decoded.

The decoders recurse once per level (Python's `json` and `tomllib`, msgspec; orjson stops at
1,024 levels), so a text nested 100,000 deep raised `RecursionError` from deep inside them, a
traceback instead of a message. Every decoder of data that enters (request bodies, task files,
settings and templates files, journal records, endpoint answers) first asks `json_depth_problem`
or `toml_depth_problem`, and refuses a text nested deeper than `MAX_DEPTH` with a message that
names the depth and where it was passed (line and column). No real input comes near it: a
journal record or a request nests 6 levels, a settings file 3.

The check costs little where nesting is shallow: a text with no more opening brackets than the
limit is not scanned at all; otherwise its strings are removed and the depth of what is left is
a running sum (numpy), and only a text found too deep is walked again to say where.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["MAX_DEPTH", "json_depth_problem", "toml_depth_problem"]

#: The deepest nesting accepted in any JSON or TOML text the engine reads.
MAX_DEPTH = 64

_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'[]{}"'))
_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1
_QUOTE = ord('"')


def json_depth_problem(text: bytes | str, limit: int = MAX_DEPTH) -> str | None:
    """None when the JSON `text` nests at most `limit` levels; else what is wrong and where,
    ``nested deeper than 64 levels (line 1, column 65)``. Malformed JSON is left to its
    decoder to refuse."""
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= limit:
            return None
        data = text.encode("utf-8", "surrogatepass")
    else:
        data = text
        if data.count(b"[") + data.count(b"{") <= limit:
            return None
    if _deepest(data) <= limit:
        return None
    depth = 0
    for match in _TOKEN.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return _problem(data, match.start(), limit)
        elif token in (b"]", b"}"):
            depth -= 1
    return None  # deep only inside a string left open: malformed, which the decoder says


def _deepest(data: bytes) -> int:
    """The deepest nesting of brackets outside strings: escaped backslashes and quotes are
    dropped (pairs, left to right, as a decoder reads them), then all but brackets and quotes;
    a bracket counts when an even number of quotes comes before it."""
    kept = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    marks = np.frombuffer(kept, dtype=np.uint8)
    steps = _STEP[marks]
    if kept.count(b'"'):
        inside = np.bitwise_xor.accumulate((marks == _QUOTE).view(np.uint8))
        steps[inside.astype(bool)] = 0
    return int(np.cumsum(steps, dtype=np.int32).max()) if steps.size else 0


def toml_depth_problem(text: str, limit: int = MAX_DEPTH) -> str | None:
    """As `json_depth_problem`, for TOML: arrays and inline tables nest, and so do the parts
    of a dotted key (``a.b.c = 1``, ``[a.b.c]``), each a level. Strings and comments are
    skipped; a malformed text is left to `tomllib` to refuse."""
    if text.count("[") + text.count("{") + text.count(".") <= limit:
        return None
    offset = _TomlScan(text, limit).run()
    return None if offset is None else _problem(text, offset, limit)


def _problem(text: bytes | str, offset: int, limit: int) -> str:
    """The message, with the line (when the text has several) and the column, in characters,
    of `offset` in `text`."""
    if isinstance(text, bytes):
        lines, start = text.count(b"\n"), text.rfind(b"\n", 0, offset) + 1
        column = len(text[start:offset].decode("utf-8", "replace")) + 1
        line = text.count(b"\n", 0, offset) + 1
    else:
        lines, start = text.count("\n"), text.rfind("\n", 0, offset) + 1
        column = offset - start + 1
        line = text.count("\n", 0, offset) + 1
    where = f"line {line}, column {column}" if lines else f"column {column}"
    return f"nested deeper than {limit} levels ({where})"


class _TomlScan:
    """A walk over TOML text that counts nesting: the table header in force, the arrays and
    inline tables open, and the parts of the dotted keys at each level. It knows strings,
    comments and where keys stand, no more."""

    def __init__(self, text: str, limit: int) -> None:
        self.text = text
        self.limit = limit
        self.header = 0  # the levels of the table header in force
        self.top = 0  # dots in the key of the statement at the top level
        self.stack: list[list[int]] = []  # per array or inline table: [is a table, key dots]
        self.in_key = True  # where a key stands: a line's start, or after { or , in a table

    def depth(self) -> int:
        return self.header + self.top + sum(1 + dots for _, dots in self.stack)

    def run(self) -> int | None:
        """The offset where the nesting passes the limit, or None."""
        text, i = self.text, 0
        while i < len(text):
            ch = text[i]
            if ch in "\"'":
                i = _string_end(text, i)
                continue
            if ch == "#":
                end = text.find("\n", i)
                i = len(text) if end < 0 else end
                continue
            if ch == "[" and not self.stack and self.in_key and not self.top:
                i = self._header(i)
                if self.header > self.limit:
                    return i
                continue
            self._step(ch)
            if self.depth() > self.limit:
                return i
            i += 1
        return None

    def _step(self, ch: str) -> None:
        if ch == "\n" and not self.stack:
            self.in_key, self.top = True, 0
        elif ch in "[{":
            self.stack.append([ch == "{", 0])
            self.in_key = ch == "{"
        elif ch in "]}":
            if self.stack:
                self.stack.pop()
            self.in_key = False
        elif ch == "," and self.stack and self.stack[-1][0]:
            self.in_key, self.stack[-1][1] = True, 0
        elif ch == "." and self.in_key:
            if self.stack:
                self.stack[-1][1] += 1
            else:
                self.top += 1
        elif ch == "=":
            self.in_key = False

    def _header(self, i: int) -> int:
        """Past a ``[table]`` or ``[[array.of.tables]]`` header, whose dotted parts are the
        levels the keys that follow sit under."""
        text, dots, j = self.text, 0, i + 1
        while j < len(text) and text[j] not in "]\n":
            if text[j] in "\"'":
                j = _string_end(text, j)
                continue
            dots += text[j] == "."
            j += 1
        self.header, self.in_key = 1 + dots, False
        return j


def _string_end(text: str, i: int) -> int:
    """The offset just past the string that starts at `i` (basic or literal, on one line or
    several); the end of the text when it is not closed."""
    quote = text[i]
    if text.startswith(quote * 3, i):
        end = text.find(quote * 3, i + 3)
        return len(text) if end < 0 else end + 3
    j = i + 1
    while j < len(text) and text[j] not in (quote, "\n"):
        j += 2 if quote == '"' and text[j] == "\\" else 1
    return j + 1
