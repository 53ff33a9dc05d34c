"""Ctrl-C and SIGTERM during `run` and `resume`: the study stops as the UI's quit does (calls in
flight cancelled, never scored; the journal closed with its last event), then the command says
where it stands and how to go on. A second Ctrl-C stops at once."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from engine.study.snapshot import StudyControl

__all__ = ["Interrupts"]

_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class Interrupts:
    """Turns the first SIGINT or SIGTERM into `control.cancel(...)`; `received` names it."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._control: StudyControl | None = None

    def install(self, control: StudyControl) -> None:
        """Handle the signals on the running loop, for `control` (call from inside the loop)."""
        self._control = control
        loop = asyncio.get_running_loop()
        for number in _NAMES:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(number, self._on_signal, number)

    def _on_signal(self, number: signal.Signals) -> None:
        if self.received is not None:  # the second one: stop now
            loop = asyncio.get_running_loop()
            for other in _NAMES:
                loop.remove_signal_handler(other)
            signal.raise_signal(number)
            return
        self.received = _NAMES[number]
        if self._control is not None:
            self._control.cancel(f"interrupted by {self.received}")
