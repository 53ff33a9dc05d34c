"""engine.ui: the live terminal UI (docs/design.md, "Terminal UI").

Pure render functions of a `StudySnapshot` (`screen`, the panels, `plain_line`), keys that call
a `StudyControl` (`apply_key`), the in-process hook of `ape-engine run --tui` (`TerminalUi`,
`PlainLines`, `make_ui`) and `ape-engine top`, which attaches to a service (`engine.ui.top`).
"""

from engine.ui.keys import BINDINGS, apply_key, decode, help_text, keys_table
from engine.ui.live import Display, LiveScreen, PlainLines, TerminalUi, follow, make_ui
from engine.ui.render import plain_line, screen
from engine.ui.state import UiState, ordered_arms
from engine.ui.terminal import KeyReader

__all__ = [
    "BINDINGS",
    "Display",
    "KeyReader",
    "LiveScreen",
    "PlainLines",
    "TerminalUi",
    "UiState",
    "apply_key",
    "decode",
    "follow",
    "help_text",
    "keys_table",
    "make_ui",
    "ordered_arms",
    "plain_line",
    "screen",
]
