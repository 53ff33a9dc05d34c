"""The console a command prints its output on (`output_console`).

On a terminal, rich's own: as wide as the window, long text wrapped at spaces. Anywhere else --
a pipe into grep or less, a file, a test's captured output -- there is no window to fit, and
rich's 80 columns would cut every cell of a wide table (``fir…``) and break lines in the middle
of a phrase: the console is then as wide as what is printed (a table at its natural width, one
row a line) and never wraps a line, so ``ape-engine studies | grep TASK`` finds the row whole.
"""

from __future__ import annotations

from typing import IO

from rich.console import Console

__all__ = ["UNBOUNDED", "output_console"]

#: The width of a console that is not a terminal: more than any line the engine prints (a
#: table takes its natural width below it; nothing the engine prints fills the width).
UNBOUNDED = 100_000


def output_console(file: IO[str] | None = None) -> Console:
    """A console on `file` (standard output when None, looked up at each print): the terminal's
    width on a terminal, else unbounded and without wrapping."""
    console = Console(file=file)
    if console.is_terminal:
        return console
    return Console(file=file, width=UNBOUNDED, soft_wrap=True)
