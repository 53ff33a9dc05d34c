"""The endpoints panel: one line per endpoint when a role of the study runs on several (it
takes the limiter panel's place on the screen, `engine.ui.render.screen`)."""

from __future__ import annotations

from rich.panel import Panel
from rich.text import Text

from engine.study.snapshot import StudySnapshot
from engine.ui import text as fmt

__all__ = ["endpoints_panel", "pooled"]

_PANEL_PADDING = 4  # two borders and a space of padding on each side

_ENDPOINT_MARK = {"ok": ("●", "green"), "probing": ("◐", "yellow"), "cooled": ("✗", "bold red")}


def pooled(snapshot: StudySnapshot) -> bool:
    """Whether some role of the study runs on several endpoints (the endpoints panel shows)."""
    roles = [row.role for row in snapshot.endpoints]
    return len(roles) > len(set(roles))


def endpoints_panel(snapshot: StudySnapshot, width: int, height: int = 6) -> Panel:
    """One line per endpoint: its state in the pool (● in use, ◐ tested by one call after a
    cool-down, ✗ cooled down), its share of its role's calls, latency p50, 429 answers, and
    its request bucket's fill (when there is room) and limit."""
    inner = max(20, width - _PANEL_PADDING)
    limiters = {row.endpoint: row for row in snapshot.limiters}
    bar_width = inner - (8 + 1 + 4 + 5 + 3 + 10) - 6  # the other cells and the spaces
    header = [("endpoint", 8), ("", 1), ("%", -4), ("p50", -5), ("429", -3), ("limit", -10)]
    if bar_width >= 3:
        header.insert(5, ("", bar_width))
    lines = [fmt.row_text([(text, size, "") for text, size in header], "bold")]
    for row in snapshot.endpoints:
        mark, style = _ENDPOINT_MARK.get(row.state, ("?", ""))
        limiter = limiters.get(row.endpoint)
        rpm = limiter.requests_per_minute if limiter is not None else None
        fill = limiter.request_fill if limiter is not None else 1.0
        value = "no limit" if rpm is None else f"{fmt.rate(rpm)} rpm"
        if row.state == "cooled":
            value = f"cooled {fmt.duration(row.cooled_s)}"
        cells = [
            (row.endpoint, 8, "bold"),
            (mark, 1, style),
            (fmt.percent(row.share), -4, ""),
            (fmt.seconds_ms(row.latency_p50_s), -5, ""),
            (fmt.count(row.rate_limited), -3, "yellow" if row.rate_limited else ""),
            (value, -10, style if row.state != "ok" else ""),
        ]
        if bar_width >= 3:
            bar = "" if rpm is None or row.state == "cooled" else fmt.fill_bar(fill, bar_width)
            cells.insert(5, (bar, bar_width, "green"))
        lines.append(fmt.row_text(cells))
    return Panel(Text("\n").join(lines), title="endpoints", title_align="left", padding=(0, 1))
