"""The live screen: `LiveScreen` draws snapshots in place and applies keys; `TerminalUi` is the
in-process display of `ape-engine run --tui`; `PlainLines` is the fallback without a terminal.

Displays pull: `follow(display, control)` asks the study for a snapshot about ten times a second
on the event loop and hands it to the display's `update`, until a snapshot says the study is
done; keys read on the `KeyReader` thread are applied there, on the loop, so `StudyControl`
calls never cross threads.
`Live` runs on the alternate screen with auto refresh off: each snapshot redraws once, a fixed
layout of the console's size, so nothing scrolls or flickers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import anyio
from rich.console import Console
from rich.live import Live

from engine.study.snapshot import StudyControl, StudySnapshot
from engine.ui.errors import NewErrors
from engine.ui.keys import apply_key
from engine.ui.render import plain_line, screen
from engine.ui.state import UiState
from engine.ui.terminal import Closing, KeyReader

__all__ = [
    "FOLLOW_EVERY_S",
    "Display",
    "LiveScreen",
    "PlainLines",
    "TerminalUi",
    "follow",
    "make_ui",
]

_MIN_FRAME_S = 0.05  # at most 20 frames a second, however often snapshots come
FOLLOW_EVERY_S = 0.1


class Display(Protocol):
    """A screen of a running study: `attach` once with its controls, then `update` with each
    snapshot `follow` takes."""

    def attach(self, control: StudyControl) -> None: ...

    def update(self, snapshot: StudySnapshot) -> None: ...


async def follow(
    display: Display, control: StudyControl, *, every_s: float = FOLLOW_EVERY_S
) -> None:
    """Feed `display` a snapshot of `control` every `every_s` seconds until one is done."""
    display.attach(control)
    while True:
        snapshot = control.snapshot()
        display.update(snapshot)
        if snapshot.done:
            return
        await anyio.sleep(every_s)


class LiveScreen:
    """A `Live` full-screen view of snapshots with keys applied to a `StudyControl`."""

    def __init__(
        self,
        console: Console,
        *,
        reader: KeyReader | None = None,
        source: str = "",
        time_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.reader = reader if reader is not None else KeyReader()
        self.state = UiState(time_s=time_s)
        self.source = source
        self._live: Live | None = None
        self._last_frame = 0.0
        self._time_s = time_s
        self.last: StudySnapshot | None = None

    def start(self) -> None:
        if self._live is not None:
            return
        self.reader.start()
        self._live = Live(
            console=self.console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def handle_keys(self, control: StudyControl) -> list[str]:
        """Apply the keys pressed since the last call; returns the actions taken."""
        actions = []
        for key in self.reader.pressed():
            action = apply_key(key, control, self.state)
            if action is not None:
                actions.append(action)
        return actions

    def draw(self, snapshot: StudySnapshot, *, force: bool = False) -> None:
        self.last = snapshot
        now = self._time_s()
        if self._live is None or (not force and now - self._last_frame < _MIN_FRAME_S):
            return
        self._last_frame = now
        selected = self.state.selection(snapshot)
        self._live.update(
            screen(
                snapshot,
                selected=selected,
                notice=self.state.current_notice(),
                source=self.source,
            ),
            refresh=True,
        )

    def stop(self) -> None:
        live, self._live = self._live, None
        try:
            if live is not None:
                live.stop()
        finally:
            self.reader.close()


class TerminalUi(Closing):
    """The display of `ape-engine run --tui`. Use it as a context manager around the run so the
    terminal is restored even when the run fails; it leaves the screen by itself when the study
    is done (so the report prints on the normal screen). Quit cancels the study, which then
    stops cleanly and reports."""

    def __init__(self, console: Console, *, reader: KeyReader | None = None) -> None:
        self.screen = LiveScreen(console, reader=reader, source="in-process")
        self.control: StudyControl | None = None
        self._cancelled = False

    def attach(self, control: StudyControl) -> None:
        self.control = control
        self.screen.start()

    def update(self, snapshot: StudySnapshot) -> None:
        if self.control is not None:
            self.screen.handle_keys(self.control)
            if self.screen.state.quit and not self._cancelled:
                self._cancelled = True
                self.screen.state.say("quitting: cancelling the study, then the report")
                self.control.cancel()
        if snapshot.done:
            self.screen.draw(snapshot, force=True)
            self.close()
            return
        self.screen.draw(snapshot)

    def close(self) -> None:
        self.screen.stop()


class PlainLines(Closing):
    """The display without a terminal: one progress line every `every_s` seconds and at the end."""

    def __init__(
        self,
        console: Console,
        *,
        every_s: float = 3.0,
        time_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.every_s = every_s
        self._time_s = time_s
        self._last: float | None = None
        self._done = False
        self._errors = NewErrors()
        self._warned = 0

    def attach(self, control: StudyControl) -> None:
        return None

    def update(self, snapshot: StudySnapshot) -> None:
        now = self._time_s()
        if self._done:
            return
        for line in self._errors.lines(snapshot):  # at once, not at the next progress line
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)
        for warning in snapshot.warnings[self._warned :]:  # each once, as it comes
            self.console.print(f"warning: {warning}", highlight=False, markup=False)
        self._warned = max(self._warned, len(snapshot.warnings))
        due = self._last is None or now - self._last >= self.every_s
        if due or snapshot.done:
            self._last = now
            self._done = snapshot.done
            self.console.print(plain_line(snapshot), highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        return None


def make_ui(console: Console) -> TerminalUi | PlainLines:
    """The live screen on a terminal, plain progress lines otherwise (a pipe, CI, a dumb term)."""
    if console.is_terminal and not console.is_dumb_terminal:
        return TerminalUi(console)
    return PlainLines(console)
