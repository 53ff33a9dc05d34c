"""The journal: a study's events, one JSON line each, in one append-only file.

`JournalFile` knows lines, not studies (as Optuna's journal file backend): it reads them back
with a torn last line tolerated, and appends with every write checked (a short write is
continued), synced to disk in batches, at most every 200 ms, and at close. Before the first
append to an existing file, a torn last line (a crash, or a full disk, in the middle of a write)
is cut off and kept beside the journal in ``<name>.torn``, so a second resume never reads a line
glued onto it. A write that fails (no space, an I/O error) raises `JournalWriteError`, one line
that names the file and what to do; the file is then left alone, its last line torn at worst,
which the next open cuts off. `JournalWriter` is the study's observer that writes every event
and never drops one: after a failed write it writes nothing more (the study stops on the error). `replay_journal` reads the events back with their types
and ranges checked (`engine.study.events`); a line that does not decode is an error naming the
file, the line and the field, never a traceback. The first event is `StudyStarted`, whose
``version`` is the journal's format: a journal of another format is refused with a message.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson

from engine.errors import JournalError
from engine.study.events import (
    JOURNAL_VERSION,
    ArmDropped,
    ArmEliminated,
    CandidateAdded,
    Event,
    LeaderChanged,
    PullDone,
    StudyFinished,
    StudyResumed,
    StudyStarted,
)
from engine.study.legacy import LEGACY_VERSIONS, legacy_decoder, upgrade
from engine.task.types import Task

__all__ = [
    "JournalFile",
    "JournalWriteError",
    "JournalWriter",
    "Replay",
    "read_events",
    "read_records",
    "replay_journal",
    "task_fingerprint",
]

_FSYNC_EVERY_S = 0.2
_write = os.write  # a fault test puts a writer here that writes short and runs out of space
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_DECODER = msgspec.json.Decoder(Event)


def task_fingerprint(task: Task) -> str:
    """A hash of the task's examples, metric and human instruction."""
    digest = hashlib.sha256()
    digest.update(orjson.dumps([task.name, task.metric, task.human_instruction]))
    for example in task.examples:
        digest.update(orjson.dumps([example.input, list(example.outputs)]))
    for example in task.test_examples or ():
        digest.update(orjson.dumps(["test", example.input, list(example.outputs)]))
    return digest.hexdigest()[:16]


class JournalWriteError(JournalError):
    """The journal could not be written: the study stopped, and its journal -- whole up to its
    last line -- resumes once the cause (a full disk, most often) is fixed."""

    def __init__(self, where: str, error: OSError, doing: str) -> None:
        reason = error.strerror or type(error).__name__
        if error.errno in _NO_SPACE:
            advice = "free some space on that disk"
        else:
            advice = "check the disk and the file's permissions"
        super().__init__(
            f"{where}: cannot {doing} ({reason}); the study stopped here: {advice}, then resume "
            "it from this journal"
        )
        self.errno = error.errno


class JournalFile:
    """One journal file as lines."""

    def __init__(self, path: str | Path, *, time_s: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._time_s = time_s
        self._fd = -1
        self._last_sync = 0.0

    def where(self) -> str:
        return f"journal {str(self.path)!r}"

    def read_lines(self) -> list[tuple[int, bytes]]:
        """(line number, bytes) of every non-empty line; a last line with no newline that is
        not JSON is a torn write and left out."""
        try:
            data = self.path.read_bytes()
        except OSError as error:
            raise JournalError(f"{self.where()}: cannot read it ({error.strerror})") from None
        lines = data.split(b"\n")
        torn = lines.pop()  # what follows the last newline: empty, or a write cut short
        numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
        if torn.strip() and _parses(torn):
            numbered.append((len(lines) + 1, torn))
        return numbered

    def open(self) -> None:
        """Open for appending; an existing torn last line is cut off first (and kept)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._repair_tail()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise JournalWriteError(self.where(), error, "open it for writing") from None
        self._last_sync = self._time_s()

    def _repair_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        start, tail = _last_line(self.path)
        if not tail:
            return
        if _parses(tail):  # a whole record whose newline was not written
            with self.path.open("ab") as file:
                file.write(b"\n")
            return
        self.path.with_name(self.path.name + ".torn").write_bytes(tail)
        os.truncate(self.path, start)

    def append(self, line: bytes) -> None:
        """Write one line (`line` ends with a newline), all of it, or raise `JournalError`."""
        view = memoryview(line)
        try:
            while view:
                written = _write(self._fd, view)
                view = view[written:]
            now = self._time_s()
            if now - self._last_sync >= _FSYNC_EVERY_S:
                os.fsync(self._fd)
                self._last_sync = now
        except OSError as error:
            raise JournalWriteError(self.where(), error, "write") from None

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.fsync(fd)
            except OSError:
                pass  # nothing more can be saved; the next open repairs a torn tail
            finally:
                os.close(fd)


def _last_line(path: Path) -> tuple[int, bytes]:
    """(offset, bytes) of what follows the file's last newline (empty when it ends in one),
    read from the end in growing blocks, so a long journal is not read whole."""
    with path.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        block = 1 << 16
        while True:
            start = max(0, size - block)
            file.seek(start)
            data = file.read(size - start)
            newline = data.rfind(b"\n")
            if newline >= 0 or start == 0:
                cut = start + newline + 1
                return cut, data[newline + 1 :]
            block *= 4


def _parses(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


class JournalWriter:
    """The study's observer that appends every event to its journal."""

    def __init__(self, path: str | Path, *, time_s: Callable[[], float] = time.monotonic) -> None:
        self.file = JournalFile(path, time_s=time_s)
        self.file.open()
        self.path = self.file.path
        self._encoder = msgspec.json.Encoder()
        self.records = 0
        self.failed: JournalWriteError | None = None

    def __call__(self, event: Event) -> None:
        """Append `event`; after a failed write nothing more is written (a line glued onto a
        torn one would be lost with it), and the study has stopped on the first error."""
        if self.failed is not None:
            return
        try:
            self.file.append(self._encoder.encode(event) + b"\n")
        except JournalWriteError as error:
            self.failed = error
            raise
        self.records += 1

    def close(self) -> None:
        self.file.close()


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every line of a journal as plain JSON (for tools that show or export it)."""
    return [orjson.loads(line) for _, line in JournalFile(path).read_lines()]


def read_events(path: str | Path) -> list[Event]:
    """Every event of a journal, decoded with types and ranges; a `JournalError` names the
    line and the field of the first one that does not decode."""
    return [event for _, event in _numbered_events(path)]


def _numbered_events(path: str | Path) -> list[tuple[int, Event]]:
    """The events of every line; a journal of an earlier format (its first line says which)
    is read with that format's decoder and its events upgraded (`engine.study.legacy`)."""
    file = JournalFile(path)
    events: list[tuple[int, Event]] = []
    legacy = None
    for number, line in file.read_lines():
        try:
            if legacy is None:
                event = _DECODER.decode(line)
            else:
                event = upgrade(legacy.decode(line))
            if not events and isinstance(event, StudyStarted):
                legacy = legacy_decoder(event.version)
            events.append((number, event))
        except msgspec.ValidationError as error:
            if number == 1:
                _refuse_header(file, line)
            raise JournalError(f"{file.where()}, line {number}: {error}") from None
        except msgspec.DecodeError:
            raise JournalError(
                f"{file.where()}, line {number}: not JSON; the journal is damaged"
            ) from None
    return events


def _refuse_header(file: JournalFile, line: bytes) -> None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return  # not even JSON: the caller says so
    if isinstance(record, dict) and record.get("type") == "header":
        raise JournalError(
            f"{file.where()}: written by an older ape-engine (journal format "
            f"{record.get('version')}); this version reads format {JOURNAL_VERSION}. Resume it "
            "with the version that started it, or start a new study"
        )


@dataclass(slots=True)
class Replay:
    """A journal read back: its first event, every event (the first included), and the
    `StudyFinished` of the last run, when it ended."""

    started: StudyStarted
    events: list[Event]
    finished: StudyFinished | None = None
    path: Path = field(default_factory=Path)
    lines: list[int] = field(default_factory=list)  # each event's line in the file

    def where(self, index: int) -> str:
        """The file and line of event `index`, for a message."""
        line = f", line {self.lines[index]}" if index < len(self.lines) else ""
        return f"journal {str(self.path)!r}{line}"

    @property
    def study_id(self) -> str:
        return self.started.study_id

    def counts(self) -> tuple[int, int]:
        """(candidates, observations) in the journal."""
        candidates = sum(isinstance(event, CandidateAdded) for event in self.events)
        return candidates, sum(isinstance(event, PullDone) for event in self.events)


def replay_journal(path: str | Path) -> Replay:
    """Read a journal back; refuse one that does not start with a study of this format, or
    whose records do not hold together (`_check_candidates`)."""
    where = f"journal {str(path)!r}"
    numbered = _numbered_events(path)
    first = numbered[0][1] if numbered else None
    if not isinstance(first, StudyStarted):
        raise JournalError(f"{where}: no header record; is this an ape-engine journal?")
    if first.version != JOURNAL_VERSION and first.version not in LEGACY_VERSIONS:
        readable = ", ".join(str(v) for v in sorted({JOURNAL_VERSION, *LEGACY_VERSIONS}))
        raise JournalError(
            f"{where}: journal format {first.version}; this version of ape-engine reads "
            f"formats {readable}"
        )
    _check_candidates(numbered, where)
    finished = None
    for number, event in numbered[1:]:
        if isinstance(event, StudyStarted):
            raise JournalError(
                f"{where}, line {number}: a second study; one journal holds one study"
            )
        if isinstance(event, StudyFinished):
            finished = event
        elif isinstance(event, StudyResumed):
            finished = None  # a finished study went on (a raised budget)
    events = [event for _, event in numbered]
    return Replay(first, events, finished, Path(path), [number for number, _ in numbered])


def _check_candidates(numbered: list[tuple[int, Event]], where: str) -> None:
    """Candidates come in order (0, 1, ...), every record names one that came before it, and
    an example is scored once per candidate: what a study applies on resume holds together."""
    count = 0
    scored: set[tuple[int, int]] = set()
    for number, event in numbered:
        problem = None
        if isinstance(event, CandidateAdded):
            if event.arm != count:
                problem = f"candidate {event.arm} out of order (expected {count})"
            elif any(parent >= event.arm for parent in event.parents):
                late = max(event.parents)
                problem = f"candidate {event.arm} has a parent ({late}) not before it"
            count += 1
        elif isinstance(event, PullDone | ArmDropped | ArmEliminated | LeaderChanged):
            if event.arm >= count:
                problem = f"{event.kind} of candidate {event.arm}; only {count} came before"
            elif isinstance(event, PullDone):
                if (event.arm, event.example) in scored:
                    problem = f"candidate {event.arm} scored twice on example {event.example}"
                scored.add((event.arm, event.example))
        if problem is not None:
            raise JournalError(f"{where}, line {number}: {problem}; the journal is damaged")
