"""The journal: a study's events, one JSON line each, in one append-only file.

`JournalFile` knows lines, not studies (as Optuna's journal file backend): it reads them back
with a torn last line tolerated, and appends with every write checked (a short write is
continued), synced to disk in batches, at most every 200 ms, and at close. Before the first
append to an existing file, a torn last line (a crash, or a full disk, in the middle of a write)
is cut off and kept beside the journal in ``<name>.torn`` (the next one in ``<name>.torn.1``, and
so on: no tail overwrites another), so a second resume never reads a line glued onto it. A write that fails (no space, an I/O error) raises `JournalWriteError`, one line
that names the file and what to do; the file is then left alone, its last line torn at worst,
which the next open cuts off. `JournalWriter` is the study's observer that writes every event
and never drops one: after a failed write it writes nothing more (the study stops on the error). `replay_journal` reads the events back with their types
and ranges checked (`engine.study.events`); a line that does not decode is an error naming the
file, the line and the field, never a traceback. The first event is `StudyStarted`, whose
``version`` is the journal's format: a journal of another format is refused with a message.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import orjson

from engine.errors import JournalError
from engine.nesting import json_depth_problem
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
from engine.task.fingerprint import task_fingerprint

__all__ = [
    "JournalFile",
    "JournalWriteError",
    "JournalWriter",
    "NotRegular",
    "Replay",
    "open_regular",
    "read_events",
    "read_records",
    "replay_journal",
    "task_fingerprint",
    "torn_path",
]

_FSYNC_EVERY_S = 0.2
_write = os.write  # a fault test puts a writer here that writes short and runs out of space
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_DECODER = msgspec.json.Decoder(Event)


class JournalWriteError(JournalError):
    """The journal could not be written: the study stopped, and its journal -- whole up to its
    last line -- resumes once the cause (a full disk, most often) is fixed."""

    def __init__(
        self, where: str, error: OSError, doing: str, others: tuple[str, ...] = ()
    ) -> None:
        reason = error.strerror or type(error).__name__
        if error.errno in _NO_SPACE:
            advice = "free some space on that disk"
        else:
            advice = "check the disk and the file's permissions"
        nor = "".join(f"; {other}" for other in others)
        super().__init__(
            f"{where}: cannot {doing} ({reason}){nor}; the study stopped here: {advice}, then "
            "resume it from this journal"
        )
        self.errno = error.errno
        self._said = (where, error, doing)
        self.others = others

    @property
    def no_space(self) -> bool:
        return self.errno in _NO_SPACE

    def naming(self, other: str) -> JournalWriteError:
        """The same error, naming another file that could not be written either (`other`:
        ``the response cache '...' could not be written either (why)``)."""
        where, error, doing = self._said
        return JournalWriteError(where, error, doing, (*self.others, other))


class NotRegular(OSError):
    """A path that names something other than a regular file (a FIFO, a device, a folder)."""


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file (after symbolic links), else
    `NotRegular` saying what it is. It is opened without blocking first, so a FIFO no writer
    holds never hangs the reader, and checked on the open file, so nothing can be swapped in
    between; a device such as /dev/zero is never read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = next((name for test, name in _KINDS if test(mode)), "not a file")
            raise NotRegular(errno.EINVAL, f"not a regular file ({what})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class JournalFile:
    """One journal file as lines."""

    def __init__(self, path: str | Path, *, time_s: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._time_s = time_s
        self._fd = -1
        self._last_sync = 0.0
        self.size = 0  # the bytes `read_lines` read

    def where(self) -> str:
        return f"journal {str(self.path)!r}"

    def read_lines(self) -> list[tuple[int, bytes]]:
        """(line number, bytes) of every non-empty line; a last line with no newline that is
        not JSON is a torn write and left out."""
        try:
            with open_regular(self.path) as file:
                data = file.read()
            self.size = len(data)
        except NotRegular as error:
            raise JournalError(f"{self.where()}: {error.strerror}; not read") from None
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
        _keep_torn(self.path, tail)
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


def torn_path(path: Path, number: int) -> Path:
    """Where the `number`-th torn tail cut off `path` is kept: ``<name>.torn``, then
    ``<name>.torn.1``, ``<name>.torn.2``, ..."""
    return path.with_name(f"{path.name}.torn" + (f".{number}" if number else ""))


def _keep_torn(path: Path, tail: bytes) -> None:
    """Keep `tail` in the first torn file's name that is free: no tail overwrites another."""
    number = 0
    while True:
        kept = torn_path(path, number)
        try:
            file = kept.open("xb")
        except FileExistsError:
            number += 1
            continue
        try:
            with file:
                file.write(tail)
                file.flush()
                os.fsync(file.fileno())
        except OSError:
            kept.unlink(missing_ok=True)  # half a tail is no record; the journal keeps it
            raise
        return


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
    file = JournalFile(path)
    records = []
    for number, line in file.read_lines():
        _check_depth(file, number, line)
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            raise JournalError(
                f"{file.where()}, line {number}: not JSON; the journal is damaged"
            ) from None
    return records


def _check_depth(file: JournalFile, number: int, line: bytes) -> None:
    """A record nests a few levels; one nested deeper than any decoder should recurse is
    refused by its line before it is decoded."""
    deep = json_depth_problem(line)
    if deep is not None:
        raise JournalError(f"{file.where()}, line {number}: {deep}; the journal is damaged")


def read_events(path: str | Path) -> list[Event]:
    """Every event of a journal, decoded with types and ranges; a `JournalError` names the
    line and the field of the first one that does not decode."""
    return [event for _, event in _numbered_events(JournalFile(path))]


def _numbered_events(file: JournalFile) -> list[tuple[int, Event]]:
    """The events of every line; a journal of an earlier format (its first line says which)
    is read with that format's decoder and its events upgraded (`engine.study.legacy`)."""
    events: list[tuple[int, Event]] = []
    legacy = None
    for number, line in file.read_lines():
        _check_depth(file, number, line)
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
    size: int = 0  # the journal's bytes as they were read: a writer checks nobody added any

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
    file = JournalFile(path)
    numbered = _numbered_events(file)
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
    lines = [number for number, _ in numbered]
    return Replay(first, events, finished, Path(path), lines, file.size)


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
