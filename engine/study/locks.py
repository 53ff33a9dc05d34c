"""One writer at a time: an exclusive lock on a file, held by whoever may append to a journal
(`run`, `resume`, each study of `serve`) or run studies out of a state folder (`serve`).

The lock is `flock(LOCK_EX | LOCK_NB)` on a small lock file beside what it guards
(``<journal>.lock``, ``<state-dir>/service.lock``), so a second writer is refused at once
instead of waiting, and the kernel lets go of it when its process ends however it ends: a lock
left by a dead process is simply taken over. The holder writes who it is (pid, host, since when,
what it runs) into the lock file once it holds it, so a refusal names it. Readers take no lock
and are never blocked. The lock file is removed when the lock is let go; whoever takes a lock
checks, once it holds it, that the path still names the file it locked (a holder that let go
may have removed it in between), and tries again when it does not.
Reference: flock(2) (locks belong to the open file description and go with its last close).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from pathlib import Path
from types import TracebackType

import orjson

from engine.errors import JournalError

__all__ = ["FileLock", "Holder", "LockHeld", "journal_lock", "journal_lock_path"]

_HOLDER_BYTES = 4096  # what a lock file may hold: one small JSON object
_HOLDER_WAIT_S = 0.5  # a holder writes who it is right after it takes the lock


class Holder:
    """Who holds a lock, as its lock file says."""

    def __init__(self, pid: int | None, host: str, since: float | None, command: str) -> None:
        self.pid = pid
        self.host = host
        self.since = since
        self.command = command

    def __str__(self) -> str:
        if self.pid is None:
            return "another process (it has not said who it is yet)"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since or 0))
        doing = f", {self.command}" if self.command else ""
        return f"pid {self.pid} on {self.host or '?'}, since {since}{doing}"


class LockHeld(JournalError):
    """Another process holds the lock: `holder` says who."""

    def __init__(self, message: str, holder: Holder) -> None:
        super().__init__(message)
        self.holder = holder


def journal_lock_path(journal: str | Path) -> Path:
    journal = Path(journal)
    return journal.with_name(journal.name + ".lock")


def _read_holder(path: Path) -> Holder:
    try:
        with path.open("rb") as file:
            data = orjson.loads(file.read(_HOLDER_BYTES))
        return Holder(
            int(data["pid"]), str(data["host"]), float(data["since"]), str(data.get("command", ""))
        )
    except (OSError, ValueError, TypeError, KeyError):
        return Holder(None, "", None, "")


def _current(holder: Holder) -> bool:
    """Could `holder` be the one holding the lock now: it said who it is, and is not a process
    of this host that has ended?"""
    if holder.pid is None:
        return False
    if holder.host != socket.gethostname():
        return True  # another host's process (a shared folder): it cannot be checked from here
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


class FileLock:
    """An exclusive lock on `path`; `what` names the thing guarded in a refusal, `advice` says
    what to do about it. ``with FileLock(...):`` or `acquire()` / `release()`."""

    def __init__(self, path: str | Path, what: str, advice: str, command: str = "") -> None:
        self.path = Path(path)
        self.what = what
        self.advice = advice
        self.command = command
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self) -> FileLock:
        """Take the lock, or raise `LockHeld` naming who has it; `JournalError` when the lock
        file cannot be made."""
        while self._fd < 0:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._cannot(error) from None
                raise self._refusal() from None
            if self._same_file(fd):
                self._fd = fd
                self._say_who(fd)
            else:  # its holder removed it as we opened it: take the new one
                os.close(fd)
        return self

    def release(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        with contextlib.suppress(OSError):  # removed first, while it is still ours
            self.path.unlink()
        os.close(fd)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)

    def __repr__(self) -> str:
        return f"FileLock({str(self.path)!r}, held={self.held})"

    def holder(self) -> Holder | None:
        """Who holds the lock now (None: nobody), without taking it for longer than a look."""
        if self._fd >= 0:
            return _read_holder(self.path)
        try:
            self.acquire()
        except LockHeld as held:
            return held.holder
        self.release()
        return None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise self._cannot(error) from None

    def _same_file(self, fd: int) -> bool:
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    def _say_who(self, fd: int) -> None:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.time(),
            "command": self.command,
        }
        with contextlib.suppress(OSError):  # the lock holds without it; a refusal says less
            os.ftruncate(fd, 0)
            os.pwrite(fd, orjson.dumps(holder), 0)

    def _refusal(self) -> LockHeld:
        """Who holds it: what its lock file says, once the holder has written it (a lock just
        taken over from a dead process still names the dead one for a moment)."""
        holder = _read_holder(self.path)
        waited = 0.0
        while not _current(holder) and waited < _HOLDER_WAIT_S:
            time.sleep(0.05)
            waited += 0.05
            holder = _read_holder(self.path)
        if not _current(holder):
            holder = Holder(None, "", None, "")
        return LockHeld(f"{self.what}: in use by {holder}; {self.advice}", holder)

    def _cannot(self, error: OSError) -> JournalError:
        return JournalError(
            f"{self.what}: cannot lock {str(self.path)!r} ({error.strerror}); check the "
            "folder's permissions"
        )


def journal_lock(journal: str | Path, command: str = "") -> FileLock:
    """The lock of one journal (not yet taken): whoever may append to it holds it."""
    return FileLock(
        journal_lock_path(journal),
        f"journal {str(journal)!r}",
        "a journal has one writer at a time (two would pay for the same calls and record them "
        "twice): wait for that process to end, or stop it, then resume",
        command,
    )
