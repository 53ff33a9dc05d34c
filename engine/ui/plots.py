"""The report's plots, drawn with matplotlib (the optional extra ``report``) as PNG images.

Each plot is a function of a `StudyRecord` that returns the PNG's bytes. matplotlib is
imported when a plot is drawn, never at import time, through its object interface
(`matplotlib.figure.Figure`, no pyplot): no window, no global state, no display needed.
`plots_available()` says whether it is installed; the page says how to get it when not.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.study.record import StudyRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PLOTS", "compared", "plots_available"]

_LEADER = "#1f6feb"
_OTHER = "#8b949e"
_HUMAN = "#d29922"
_ELIMINATED = "#cf222e"
_SHOWN = 30  # candidates in the forest plot and the calls chart


def plots_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _color(record: StudyRecord, arm: int, origin: str, state: str) -> str:
    if arm == record.winner:
        return _LEADER
    if origin == "human":
        return _HUMAN
    return _ELIMINATED if state == "eliminated" else _OTHER


def forest(record: StudyRecord) -> bytes:
    """Each candidate's pool mean and interval, the best first (a forest plot)."""
    arms = [arm for arm in record.ranked() if arm.pulls][:_SHOWN]
    figure = _figure(8, 1.2 + 0.32 * max(len(arms), 1))
    axes = figure.add_subplot()
    for row, arm in enumerate(arms):
        color = _color(record, arm.arm, arm.origin, arm.state)
        axes.plot([arm.lower, arm.upper], [row, row], color=color, linewidth=2)
        axes.plot([arm.mean], [row], "o", color=color)
    axes.set_yticks(range(len(arms)), [f"#{arm.arm}" for arm in arms])
    axes.invert_yaxis()
    axes.set_xlim(-0.02, 1.02)
    axes.set_xlabel("mean reward on the scoring pool, with the scheduler's bounds")
    axes.set_title(
        "Candidates (blue: the winner; amber: human; red: eliminated; grey: not eliminated)"
    )
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def convergence(record: StudyRecord) -> bytes:
    """The leader's interval as scoring calls were spent, and the money and time they took."""
    points = record.timeline
    calls = [point.scoring_calls for point in points]
    figure = _figure(8, 5.2)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.fill_between(
        calls, [p.lower for p in points], [p.upper for p in points], color=_LEADER, alpha=0.2
    )
    top.plot(calls, [p.mean for p in points], color=_LEADER, label="leader's mean")
    for before, after in itertools.pairwise(points):
        if after.leader != before.leader:
            top.axvline(after.scoring_calls, color=_OTHER, linestyle=":", linewidth=1)
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("leader's interval")
    top.set_title("How the scheduler converged (dotted: the leader changed)")
    if any(point.usd for point in points):
        bottom.plot(calls, [p.usd for p in points], color=_ELIMINATED)
        bottom.set_ylabel("dollars", color=_ELIMINATED)
    else:  # unpriced models (the simulator, a local one): the tokens they took
        bottom.plot(calls, [p.tokens for p in points], color=_ELIMINATED)
        bottom.set_ylabel("tokens", color=_ELIMINATED)
    seconds = bottom.twinx()
    seconds.plot(calls, [p.seconds for p in points], color=_OTHER, linestyle="--")
    seconds.set_ylabel("seconds", color=_OTHER)
    bottom.set_xlabel("scoring calls")
    return _png(figure)


def calls(record: StudyRecord) -> bytes:
    """Scoring calls per candidate: where the scheduler spent them."""
    arms = record.ranked()[:_SHOWN]
    figure = _figure(8, 3.2)
    axes = figure.add_subplot()
    colors = [_color(record, arm.arm, arm.origin, arm.state) for arm in arms]
    axes.bar([f"#{arm.arm}" for arm in arms], [arm.pulls for arm in arms], color=colors)
    axes.axhline(record.pools.scoring, color=_OTHER, linestyle=":", linewidth=1)
    axes.set_ylabel("scoring calls")
    axes.set_title(f"Calls per candidate (dotted: the whole pool, {record.pools.scoring})")
    axes.tick_params(axis="x", labelrotation=90)
    return _png(figure)


def held_out(record: StudyRecord) -> bytes:
    """The winner beside the runner-up and the human instruction (those evaluated) on the test
    pool."""
    rows = [row for row in record.held_out if row.n]
    figure = _figure(8, 1.2 + 0.5 * max(len(rows), 1))
    axes = figure.add_subplot()
    names = {"winner": "winner", "runner_up": "runner-up", "human": "human"}
    colors = {"winner": _LEADER, "runner_up": _OTHER, "human": _HUMAN}
    for position, row in enumerate(rows):
        low, high = row.interval
        color = colors.get(row.role, _OTHER)
        axes.barh(position, row.score, color=color, alpha=0.35)
        axes.plot([low, high], [position, position], color=color, linewidth=2)
        axes.plot([row.score], [position], "o", color=color)
    axes.set_yticks(range(len(rows)), [names.get(row.role, row.role) for row in rows])
    axes.invert_yaxis()
    axes.set_xlim(0, 1.02)
    axes.set_xlabel(
        f"score on the held-out test pool ({record.pools.test} examples), 95 % interval"
    )
    return _png(figure)


def compared(rows: list[tuple[str, str, float, float, float]]) -> bytes:
    """Held-out scores of several studies side by side: (label, role, score, low, high) per
    row, the winners blue, the human instructions amber, the baselines grey."""
    colors = {"winner": _LEADER, "human": _HUMAN}
    figure = _figure(8, 1.2 + 0.45 * max(len(rows), 1))
    axes = figure.add_subplot()
    for position, (_, role, score, low, high) in enumerate(rows):
        color = colors.get(role, _OTHER)
        axes.plot([low, high], [position, position], color=color, linewidth=2)
        axes.plot([score], [position], "o", color=color)
    axes.set_yticks(range(len(rows)), [label for label, *_ in rows])
    axes.invert_yaxis()
    axes.set_xlim(-0.02, 1.02)
    axes.set_xlabel("score on each study's held-out test pool, 95 % interval")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


#: (id, title, drawn when, draw): the page shows each plot whose condition holds.
PLOTS: tuple[tuple[str, str, Callable[[StudyRecord], bool], Callable[[StudyRecord], Any]], ...] = (
    ("forest", "Leaderboard with intervals", lambda r: any(a.pulls for a in r.arms), forest),
    ("convergence", "Convergence and spend", lambda r: len(r.timeline) > 1, convergence),
    ("calls", "Calls per candidate", lambda r: bool(r.arms), calls),
    (
        "held-out",
        "Held-out test pool",
        lambda r: any(h.n for h in r.held_out),
        held_out,
    ),
)
