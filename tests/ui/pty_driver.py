"""Run `ape-engine` in a pseudo-terminal of a fixed size, read what it draws, press keys."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class PtyProcess:
    def __init__(
        self,
        args: list[str],
        *,
        width: int = 100,
        height: int = 32,
        env: dict[str, str] | None = None,
    ) -> None:
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        child_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "CI")}
        child_env.update(TERM="xterm-256color", PYTHONPATH=str(ROOT), **(env or {}))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine", *args],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            cwd=ROOT,
            env=child_env,
            start_new_session=True,
        )
        os.close(follower)
        self.leader = leader
        self.final_mode: list[object] = []
        self.output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.leader, 65536)
            except OSError:  # the child closed its side
                return
            if not data:
                return
            with self._lock:
                self.output += data

    def text(self) -> str:
        with self._lock:
            return self.output.decode("utf-8", errors="replace")

    def wait_for(self, needle: str, timeout_s: float = 30.0, *, after: int = 0) -> int:
        """Wait until `needle` is drawn (after output offset `after`); returns the offset
        just past it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.text()
            found = text.find(needle, after)
            if found >= 0:
                return found + len(needle)
            if self.process.poll() is not None:
                time.sleep(0.2)  # let the reader take the last bytes
                text = self.text()
                if needle in text[after:]:
                    return text.find(needle, after) + len(needle)
                break
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not shown; the screen ends with:\n{self.text()[-3000:]}")

    def press(self, keys: bytes) -> None:
        os.write(self.leader, keys)

    def finish(self, timeout_s: float = 30.0) -> int:
        """Wait for the exit; the terminal's mode it left behind is kept in `final_mode`."""
        try:
            return self.process.wait(timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
            self.final_mode = termios.tcgetattr(self.leader)
            self._reader.join(5)
            os.close(self.leader)
