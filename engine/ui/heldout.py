"""The held-out result of an ended study, as the screens show it: the winner, the runner-up and
the human instruction scored on the test pool, each with its 95 % interval
(`StudySnapshot.held_out`; docs/design.md, "What APE is", step 4).

`held_out_panel` is the screen's region once the study ended; `held_out_lines` is the same as
plain text, printed by `ape-engine top` when the study it follows ends (after the live screen is
left, so it stays in the terminal). Pure functions of a snapshot.
"""

from __future__ import annotations

from rich.panel import Panel
from rich.text import Text

from engine.study.snapshot import HeldOutScore, StudySnapshot
from engine.ui import text as fmt
from engine.ui.proof import pick_role, proof_line

__all__ = ["held_out_lines", "held_out_panel", "held_out_rows"]

_ROLES = (("winner", "winner"), ("runner_up", "runner-up"), ("human", "human"))
_STYLE = {"winner": "bold green", "best so far": "bold yellow", "runner-up": "", "human": "cyan"}


def held_out_rows(snapshot: StudySnapshot) -> list[tuple[str, HeldOutScore]]:
    """(label, score) of each instruction evaluated on the test pool, winner first."""
    held = snapshot.held_out
    if held is None:
        return []
    pick = pick_role(snapshot.certificate)
    rows = [(pick if role == "winner" else label, getattr(held, role)) for role, label in _ROLES]
    return [(label, score) for label, score in rows if score is not None]


def _score(score: HeldOutScore) -> str:
    low, high = score.test_ci
    if score.n == 0:
        return f"not scored ({score.failed} calls failed)"
    failed = f", {score.failed} failed" if score.failed else ""
    return f"{score.test_score:.3f} [{low:.3f}, {high:.3f}] n={score.n}{failed}"


def _who(label: str, score: HeldOutScore) -> str:
    return f"{label} #{score.arm}" if score.arm is not None else label


def held_out_panel(snapshot: StudySnapshot, width: int) -> Panel:
    """One line per evaluated instruction: role and candidate, score, interval, n, the
    instruction cut to fit (no line before the study ended)."""
    rows = held_out_rows(snapshot)
    inner = max(20, width - 4)
    who_width = max((len(_who(label, score)) for label, score in rows), default=0)
    score_width = max((len(_score(score)) for _, score in rows), default=0)
    lines = []
    for label, score in rows:
        line = Text(no_wrap=True, overflow="ellipsis", style=_STYLE[label])
        line.append(_who(label, score).ljust(who_width))
        line.append("  " + _score(score).ljust(score_width) + "  ")
        room = max(8, inner - who_width - score_width - 4)
        line.append(fmt.shorten(score.instruction, room), style="")
        lines.append(line)
    return Panel(
        Text("\n").join(lines),
        title="held-out test pool · score [95 % interval]",
        title_align="left",
        padding=(0, 1),
    )


def held_out_lines(snapshot: StudySnapshot) -> list[str]:
    """The held-out result as plain lines (empty before the study ended)."""
    rows = held_out_rows(snapshot)
    if not rows:
        return []
    lines = [f"held-out test pool of study {snapshot.study_id} (score [95 % interval]):"]
    if snapshot.certificate is not None:
        lines.insert(0, proof_line(snapshot.certificate))
    for label, score in rows:
        lines.append(f"  {_who(label, score)}: {_score(score)}")
        lines.append(f"    {score.instruction!r}")
    return lines
