"""Text primitives of the terminal UI: numbers, durations, and bars drawn with block characters.

Everything here is a pure function of numbers to a string, so a screen rendered to text (rich's
recording console) shows exactly these characters: `fill_bar` (eighth blocks on a light shade),
`confidence_bar` (the interval as a heavy line, the mean as a dot, on a thin rule over [0, 1]),
and `sparkline` (one of eight block heights per value); `row_text` sets such strings in cells of
fixed width, one line of rich `Text`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text

__all__ = [
    "BAR_EMPTY",
    "BAR_FULL",
    "INTERVAL",
    "MEAN_MARK",
    "RULE",
    "SPARKS",
    "confidence_bar",
    "count",
    "duration",
    "fill_bar",
    "percent",
    "rate",
    "row_text",
    "seconds_ms",
    "shorten",
    "sparkline",
    "usd",
]

BAR_FULL = "█"
BAR_EMPTY = "░"
_EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
SPARKS = "▁▂▃▄▅▆▇█"
RULE = "─"  # outside the confidence interval
INTERVAL = "━"  # inside it
MEAN_MARK = "●"  # the cell holding the mean


def _unit(value: float) -> float:
    if not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, value))


def fill_bar(fraction: float, width: int) -> str:
    """`width` cells filled left to right to `fraction` in [0, 1], in eighths of a cell."""
    if width <= 0:
        return ""
    eighths = round(_unit(fraction) * width * 8)
    full, part = divmod(eighths, 8)
    bar = BAR_FULL * full + _EIGHTHS[part]
    return bar + BAR_EMPTY * (width - len(bar))


def confidence_bar(lower: float, mean: float | None, upper: float, width: int) -> str:
    """The axis [0, 1] in `width` cells: the interval [lower, upper] drawn heavy, the mean as a
    dot (none when there is no mean yet), the rest as a thin rule. A cell covers
    [i/width, (i+1)/width)."""
    if width <= 0:
        return ""
    lower, upper = _unit(lower), _unit(upper)
    lower, upper = min(lower, upper), max(lower, upper)
    mean_cell = -1 if mean is None else min(width - 1, int(_unit(mean) * width))
    first = min(width - 1, int(lower * width))
    last = min(width - 1, int(upper * width))
    cells = []
    for i in range(width):
        if i == mean_cell:
            cells.append(MEAN_MARK)
        elif first <= i <= last:
            cells.append(INTERVAL)
        else:
            cells.append(RULE)
    return "".join(cells)


def sparkline(values: Sequence[float], width: int) -> str:
    """The last `width` values as block heights scaled to their maximum (all zero: the floor)."""
    if width <= 0:
        return ""
    recent = [v if math.isfinite(v) and v > 0 else 0.0 for v in values[-width:]]
    top = max(recent, default=0.0)
    if top <= 0:
        return SPARKS[0] * len(recent)
    steps = len(SPARKS) - 1
    return "".join(SPARKS[round(v / top * steps)] for v in recent)


def shorten(text: str, width: int) -> str:
    """One line of at most `width` characters; a cut ends with an ellipsis."""
    flat = " ".join(text.split())
    if width <= 0:
        return ""
    if len(flat) <= width:
        return flat
    return flat[: width - 1].rstrip() + "…"


def count(value: float) -> str:
    """1234, 12.3k, 4.56M."""
    if not math.isfinite(value):
        return "?"
    size = abs(value)
    if size < 10_000:
        return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    if size < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.2f}M"


def rate(value: float | None) -> str:
    """A per-minute limit: `unlimited` for None."""
    return "unlimited" if value is None else count(round(value))


def usd(value: float) -> str:
    """$0, $0.00031, $0.012, $1.25, $1,234."""
    if value == 0 or not math.isfinite(value):
        return "$0" if value == 0 else "$?"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:.2f}"
    return f"${value:.2g}"


def duration(value_s: float | None) -> str:
    """42s, 3m05s, 2h07m; `-` when unknown."""
    if value_s is None or not math.isfinite(value_s):
        return "-"
    total = max(0, round(value_s))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s" if seconds else f"{minutes}m"
    return f"{seconds}s"


def seconds_ms(value_s: float) -> str:
    """A latency: 850ms, 1.25s."""
    if value_s < 1:
        return f"{value_s * 1000:.0f}ms"
    return f"{value_s:.2f}s"


def percent(fraction: float) -> str:
    return f"{_unit(fraction) * 100:.0f}%"


def row_text(cells: list[tuple[str, int, str]], style: str = "") -> Text:
    """Cells (text, width, style) of fixed width (negative width: right-aligned), one space
    apart."""
    line = Text(style=style, no_wrap=True, overflow="ellipsis")
    for i, (content, width, cell_style) in enumerate(cells):
        if i:
            line.append(" ")
        size = abs(width)
        cut = shorten(content, size) if len(content) > size else content
        padded = cut.rjust(size) if width < 0 else cut.ljust(size)
        line.append(padded, style=cell_style)
    return line
