"""The user's own candidates: instructions to select among, read from a file or given inline.

A candidates file is either plain text, one instruction a line (blank lines and lines starting
with ``#`` are skipped), or JSON Lines, one object a line: ``{"instruction": "...", "name":
"..."}`` with an optional name (a file whose first non-blank line starts with ``{`` is read as
JSONL). Each instruction is kept as written (outer whitespace aside); an exact repeat (case,
spacing and punctuation aside, `instruction_key`) is refused with both line numbers, as is an
empty file: a pool with a silent hole would be worse than an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec

from engine.decoding import Invalid, decode_json, read_text
from engine.errors import ConfigError
from engine.propose.normalise import instruction_key

__all__ = ["MAX_USER_CANDIDATES", "UserCandidate", "check_candidates", "load_candidates"]

MAX_USER_CANDIDATES = 10_000
MAX_INSTRUCTION_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class UserCandidate:
    """One instruction of the user's, and the name it goes by (may be empty)."""

    instruction: str
    name: str = ""


class _Line(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    instruction: Annotated[str, msgspec.Meta(pattern=r"\S", max_length=MAX_INSTRUCTION_CHARS)]
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""


def check_candidates(
    candidates: Iterable[tuple[str, UserCandidate]], where: str
) -> tuple[UserCandidate, ...]:
    """The candidates (each with the place it came from, a line or an index) as a checked pool:
    no exact repeat, at least one, at most `MAX_USER_CANDIDATES`."""
    seen: dict[str, str] = {}
    kept: list[UserCandidate] = []
    for place, candidate in candidates:
        key = instruction_key(candidate.instruction)
        if not key:
            raise ConfigError(f"{where}, {place}: the instruction has no words")
        if key in seen:
            raise ConfigError(
                f"{where}, {place}: the same instruction as {seen[key]} (case, spacing and "
                "punctuation aside); give each candidate once"
            )
        seen[key] = place
        kept.append(candidate)
    if not kept:
        raise ConfigError(f"{where}: holds no candidate")
    if len(kept) > MAX_USER_CANDIDATES:
        raise ConfigError(f"{where}: {len(kept)} candidates, more than {MAX_USER_CANDIDATES}")
    return tuple(kept)


def _jsonl(lines: list[str], where: str) -> Iterable[tuple[str, UserCandidate]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = decode_json(line.encode(), _Line)
        except Invalid as error:
            raise ConfigError(f"{where}, line {number}: {error}") from None
        yield f"line {number}", UserCandidate(value.instruction.strip(), value.name.strip())


def _plain(lines: list[str], where: str) -> Iterable[tuple[str, UserCandidate]]:
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if len(text) > MAX_INSTRUCTION_CHARS:
            raise ConfigError(
                f"{where}, line {number}: longer than {MAX_INSTRUCTION_CHARS} characters"
            )
        yield f"line {number}", UserCandidate(text)


def load_candidates(path: str | Path) -> tuple[UserCandidate, ...]:
    """The candidates of a file (plain lines or JSONL); a `ConfigError` naming the file and
    the line otherwise."""
    file = Path(path)
    where = f"candidates file {str(file)!r}"
    text = read_text(file, where)
    lines = text.splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    read = _jsonl if first.startswith("{") else _plain
    return check_candidates(read(lines, where), where)
