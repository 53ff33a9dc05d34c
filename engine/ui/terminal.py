"""Single keypresses from a terminal, read on a thread, with the terminal restored on exit.

`KeyReader` puts the terminal in a raw-ish mode (no line buffering, no echo, and no signal
keys, so Ctrl-C arrives as a key and quits cleanly instead of raising in the event loop; output
processing stays on so rich's newlines still work), reads bytes on a daemon thread with
`select` (no busy loop), decodes them with `engine.ui.keys.decode` and queues the keys. The
event loop takes them with `keys()` (never blocks). The saved terminal settings are put back by
`close()`, by the context manager's exit whatever the error, on SIGTERM (which then quits as
`q` does), and at interpreter exit as a last resort. On something that is not a terminal it reads nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import queue
import select
import signal
import sys
import termios
import threading
from types import FrameType, TracebackType
from typing import Any, Self

from engine.ui.keys import TERMINATE, decode

__all__ = ["Closing", "KeyReader"]

_ESCAPE_WAIT_S = 0.05  # a lone ESC with nothing after it for this long is the escape key


def _stdin_fd() -> int:
    """The standard input's descriptor, or -1 when it has none (a test's stand-in stream)."""
    try:
        return sys.stdin.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return -1


class Closing:
    """`with thing:` calls `thing.close()` at the end, whatever happened inside."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class KeyReader(Closing):
    def __init__(self, fd: int | None = None, *, poll_s: float = 0.05) -> None:
        self.fd = _stdin_fd() if fd is None else fd
        self._poll_s = poll_s
        self._keys: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: list[Any] | None = None
        self._previous_sigterm: Any = None

    @property
    def active(self) -> bool:
        return self._thread is not None

    def start(self) -> KeyReader:
        if self._thread is not None or self.fd < 0 or not os.isatty(self.fd):
            return self
        self._saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        mode[0] &= ~(termios.IXON | termios.ICRNL)  # Ctrl-S/Ctrl-Q and Enter as they are
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        atexit.register(self._restore)
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._stop.clear()
        self._thread = threading.Thread(target=self._read, name="ape-keys", daemon=True)
        self._thread.start()
        return self

    def pressed(self) -> list[str]:
        """The keys pressed since the last call, oldest first."""
        keys = []
        while True:
            try:
                keys.append(self._keys.get_nowait())
            except queue.Empty:
                return keys

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=1.0)
        self._restore()

    def _on_sigterm(self, number: int, frame: FrameType | None) -> None:
        """SIGTERM: give the terminal back at once, and ask the program to quit as `q` does
        (through its own cleanup). A second SIGTERM gets the handler that was there before."""
        self._restore()
        self._keys.put(TERMINATE)

    def _restore(self) -> None:
        previous, self._previous_sigterm = self._previous_sigterm, None
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
        saved, self._saved = self._saved, None
        if saved is not None:
            with contextlib.suppress(termios.error):  # the terminal is gone: nothing to do
                termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            atexit.unregister(self._restore)

    def _read(self) -> None:
        pending = b""
        while not self._stop.is_set():
            wait = _ESCAPE_WAIT_S if pending else self._poll_s
            try:
                ready, _, _ = select.select([self.fd], [], [], wait)
            except (OSError, ValueError):
                return
            if not ready:
                if pending:  # a sequence that never completed: its ESC was the escape key
                    keys, rest = decode(pending[1:])
                    self._put(["escape", *keys])
                    pending = rest
                continue
            try:
                data = os.read(self.fd, 256)
            except OSError:
                return
            if not data:
                return
            keys, pending = decode(pending + data)
            self._put(keys)

    def _put(self, keys: list[str]) -> None:
        for key in keys:
            self._keys.put(key)

    def __enter__(self) -> Self:
        self.start()
        return self
