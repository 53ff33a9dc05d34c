"""The terminal UI's screen as pure functions of a `StudySnapshot` (docs/design.md, "Terminal UI").

`screen(snapshot, ...)` is a rich `Layout` of fixed regions: a status line, the leaderboard, four
panels (throughput, limiter -- or endpoints, when a role runs on several --, budget, proposals)
and a help line. Each panel is a function `(snapshot, width, height) -> Panel` that draws to the
size it is given, so the same screen fits 80x24 and a wide terminal, and `Live` redraws it in
place without flicker. `plain_line` is the one-line form for a log or a pipe. Reference: rich's
Layout, Live and recording console.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.layout import Layout
from rich.panel import Panel
from rich.text import Text

from engine.study.snapshot import ArmRow, BudgetRow, StudySnapshot
from engine.ui import text as fmt
from engine.ui.endpoints import endpoints_panel, pooled
from engine.ui.errors import snapshot_errors
from engine.ui.heldout import held_out_panel, held_out_rows
from engine.ui.keys import help_text
from engine.ui.legend import leader_note, leader_rule
from engine.ui.lineage import descent, origin_label
from engine.ui.proof import proof_line
from engine.ui.state import ordered_arms

__all__ = [
    "budget_panel",
    "endpoints_panel",
    "help_line",
    "leaderboard_panel",
    "limiter_panel",
    "plain_line",
    "pooled",
    "proposals_panel",
    "screen",
    "status_line",
    "throughput_panel",
]

_STATUS_STYLE = {
    "starting": "yellow",
    "running": "green",
    "paused": "yellow",
    "stopping": "cyan",
    "finished": "bold green",
    "failed": "bold red",
    "cancelled": "magenta",
    "quarantined": "bold red",
}
_ARM_STYLE = {
    "leader": "bold green",
    "active": "",
    "open": "",
    "complete": "cyan",
    "eliminated": "dim",
    "dropped": "dim strike",
}
_STATE_SHORT = {"eliminated": "elim.", "complete": "complete", "leader": "★ leader"}
_STATE_LONG = {"leader": "★ leader"}
_BUDGET_LABELS = {
    "scoring_calls": "scoring",
    "proposal_calls": "propose",
    "tokens": "tokens",
    "usd": "dollars",
    "seconds": "time",
}
_PANEL_PADDING = 4  # two borders and a space of padding on each side


# -- leaderboard --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Columns:
    state: int
    bar: int
    interval: bool
    origin: int
    long_names: bool


def _columns(inner: int) -> _Columns:
    if inner >= 116:
        return _Columns(state=10, bar=16, interval=True, origin=14, long_names=True)
    if inner >= 96:
        return _Columns(state=10, bar=12, interval=False, origin=14, long_names=True)
    return _Columns(state=8, bar=10, interval=False, origin=10, long_names=False)


def _origin(row: ArmRow, long_names: bool) -> str:
    parents = row.parents or ((row.parent,) if row.parent is not None else ())
    return origin_label(row.origin, parents, short=not long_names)


def _descent_line(snapshot: StudySnapshot, arm: int | None) -> str | None:
    """The selected candidate's line of descent (the leader's when none is selected), when
    it has a parent."""
    lineage = {
        row.arm: (row.origin, row.parents or ((row.parent,) if row.parent is not None else ()))
        for row in snapshot.arms
    }
    shown = arm if arm is not None else snapshot.winner
    if shown is None or shown not in lineage or not lineage[shown][1]:
        return None
    return "lineage: " + descent(shown, lineage)


def _arm_cells(
    row: ArmRow | None, columns: _Columns, instruction_width: int, selected: bool
) -> list[tuple[str, int, str]]:
    if row is None:  # the header
        cells = [("#", -5, ""), ("state", columns.state, ""), ("mean", -5, "")]
        cells.append(("confidence", columns.bar, ""))
        if columns.interval:
            cells.append(("interval", 9, ""))
        cells += [("pulls/n", -8, ""), ("origin", columns.origin, "")]
        return [*cells, ("instruction", instruction_width, "")]
    names = _STATE_LONG if columns.long_names else _STATE_SHORT
    marker = "▶" if selected else " "
    cells = [
        (f"{marker}#{row.arm}".rjust(5) if row.arm < 1000 else f"{marker}{row.arm}", -5, ""),
        (names.get(row.state, row.state), columns.state, ""),
        (f"{row.mean:.3f}" if row.pulls else "-", -5, ""),
        (
            fmt.confidence_bar(row.lower, row.mean if row.pulls else None, row.upper, columns.bar),
            columns.bar,
            "",
        ),
    ]
    if columns.interval:
        cells.append((f"{row.lower:.2f}-{row.upper:.2f}", 9, "dim"))
    cells += [
        (f"{row.pulls}/{row.n}", -8, ""),
        (_origin(row, columns.long_names), columns.origin, "dim"),
        (fmt.shorten(row.instruction, instruction_width), instruction_width, ""),
    ]
    return cells


def _window(size: int, position: int, rows: int) -> tuple[int, int]:
    """First and last+1 row shown out of `size`, `rows` at most, with `position` inside."""
    if size <= rows:
        return 0, size
    start = max(0, min(position - rows // 2, size - rows))
    return start, start + rows


def leaderboard_panel(
    snapshot: StudySnapshot, width: int, height: int, selected: int | None = None
) -> Panel:
    """The candidates, leader first: mean, a confidence bar over [0, 1] (the interval heavy,
    the mean a dot), pulls of n, state, origin (kind and parents) and the instruction cut to
    fit; under it the selected candidate's line of descent."""
    inner = max(20, width - _PANEL_PADDING)
    columns = _columns(inner)
    fixed = sum(
        abs(w) + 1
        for _, w, _ in _arm_cells(None, columns, 0, False)[:-1]  # every cell but the text
    )
    instruction_width = max(8, inner - fixed)
    arms = ordered_arms(snapshot)
    counts = {state: sum(1 for row in arms if row.state == state) for state in _ARM_STYLE}
    in_play = counts["leader"] + counts["active"] + counts["open"]
    title = f"leaderboard · {len(arms)} candidates · {in_play} in play" + "".join(
        f" · {counts[state]} {state}"
        for state in ("complete", "eliminated", "dropped")
        if counts[state]
    )
    lines = [fmt.row_text(_arm_cells(None, columns, instruction_width, False), "bold")]
    note = leader_note(snapshot)
    family = _descent_line(snapshot, selected)
    proof = proof_line(snapshot.certificate) if snapshot.certificate is not None else None
    notes = (note is not None) + (family is not None) + (proof is not None)
    room = max(1, height - 3 - notes)  # borders, header, notes
    if not arms:
        lines.append(Text("waiting for the first candidates…", style="dim"))
    else:
        position = next((i for i, row in enumerate(arms) if row.arm == selected), 0)
        shown = room if len(arms) <= room else max(1, room - 1)
        first, last = _window(len(arms), position, shown)
        for row in arms[first:last]:
            is_selected = row.arm == selected
            style = _ARM_STYLE.get(row.state, "")
            if is_selected:
                style = f"{style} reverse".strip()
            lines.append(
                fmt.row_text(_arm_cells(row, columns, instruction_width, is_selected), style)
            )
        if last - first < len(arms):
            hidden = [f"{first} above"] if first else []
            hidden += [f"{len(arms) - last} below"] if last < len(arms) else []
            lines.append(Text(f"  … {', '.join(hidden)} (↑↓ or j/k to scroll)", style="dim"))
    if family is not None:
        lines.append(Text(family, style="dim", no_wrap=True, overflow="ellipsis"))
    if note is not None:
        lines.append(Text(note, style="italic", no_wrap=True, overflow="ellipsis"))
    if proof is not None:
        proven = snapshot.certificate is not None and snapshot.certificate.proven
        style = "green" if proven else ("yellow" if snapshot.done else "dim")
        lines.append(Text(proof, style=style, no_wrap=True, overflow="ellipsis"))
    return Panel(
        Text("\n").join(lines),
        title=fmt.shorten(title, max(10, width - 6)),
        title_align="left",
        padding=(0, 1),
        height=height,
    )


# -- the four panels ----------------------------------------------------------------------------


def in_flight_text(snapshot: StudySnapshot) -> str:
    """The calls in flight beside the concurrency that bounds them: the scoring calls. The
    proposal calls go beside the concurrency, and the proposals panel counts them (waiting)."""
    t = snapshot.throughput
    scoring = max(0, t.in_flight - snapshot.proposals.waiting)
    return f"in flight {scoring} of concurrency {t.concurrency}"


def throughput_panel(snapshot: StudySnapshot, width: int, height: int = 6) -> Panel:
    t = snapshot.throughput
    inner = max(20, width - _PANEL_PADDING)
    head = f"now {t.calls_per_s:6.1f} calls/s "
    spark = fmt.sparkline(t.recent_calls_per_s, max(0, inner - len(head)))
    body = Text(no_wrap=True, overflow="ellipsis")
    body.append(head)
    body.append(spark, style="cyan")
    body.append(
        f"\nlatency p50 {fmt.seconds_ms(t.latency_p50_s)}  p95 {fmt.seconds_ms(t.latency_p95_s)}"
    )
    body.append(f"\n{in_flight_text(snapshot)}")
    body.append("\nretries ")
    body.append(str(t.retries), style="yellow" if t.retries else "")
    body.append("  429s ")
    body.append(str(t.rate_limited), style="yellow" if t.rate_limited else "")
    body.append("  errors ")
    body.append(str(t.errors), style="bold red" if t.errors else "")
    return Panel(body, title="throughput", title_align="left", padding=(0, 1))


def limiter_panel(snapshot: StudySnapshot, width: int, height: int = 4) -> Panel:
    """Per endpoint: the request and token buckets' fill and the effective limits."""
    inner = max(20, width - _PANEL_PADDING)
    lines: list[Text] = []
    for row in snapshot.limiters:
        name = fmt.shorten(row.endpoint, 8)
        bar_width = max(4, inner - 8 - 1 - 3 - 1 - 4 - 1 - 13)
        for kind, fill, limit, unit in (
            ("req", row.request_fill, row.requests_per_minute, "rpm"),
            ("tok", row.token_fill, row.tokens_per_minute, "tpm"),
        ):
            label = name if kind == "req" else ("aimd" if row.adaptive else "")
            bar = "" if limit is None else fmt.fill_bar(fill, bar_width)
            value = "no limit" if limit is None else f"{fmt.rate(limit)} {unit}"
            lines.append(
                fmt.row_text(
                    [
                        (label, 8, "bold" if kind == "req" else "dim"),
                        (kind, 3, "dim"),
                        (bar, bar_width, "green"),
                        ("" if limit is None else fmt.percent(fill), -4, ""),
                        (value, 13, ""),
                    ]
                )
            )
    if not lines:
        lines.append(Text("no endpoint", style="dim"))
    return Panel(Text("\n").join(lines), title="limiter", title_align="left", padding=(0, 1))


def _budget_values(row: BudgetRow) -> tuple[str, str]:
    """`spent / limit` and `left` of one budget as text."""

    def show(value: float) -> str:
        if row.name == "usd":
            return fmt.usd(value)
        if row.name == "seconds":
            return fmt.duration(value)
        return fmt.count(value)

    limit = "∞" if row.limit is None else show(row.limit)
    left = "" if row.limit is None else show(max(0.0, row.limit - row.spent))
    return f"{show(row.spent)} / {limit}", left


def time_left(snapshot: StudySnapshot) -> float | None:
    """The sooner of the scoring budget's estimate and the time budget's rest (None: unknown)."""
    estimates = [] if snapshot.eta_s is None else [snapshot.eta_s]
    for row in snapshot.budgets:
        if row.name == "seconds" and row.limit is not None:
            estimates.append(max(0.0, row.limit - row.spent))
    return min(estimates) if estimates else None


def budget_panel(snapshot: StudySnapshot, width: int, height: int = 8) -> Panel:
    inner = max(20, width - _PANEL_PADDING)
    lines: list[Text] = []
    value_width, left_width = (14, 7) if inner < 50 else (19, 10)
    for row in snapshot.budgets:
        spent, left = _budget_values(row)
        bar_width = max(3, inner - 7 - 1 - value_width - 1 - left_width - 1)
        fraction = 0.0 if not row.limit else row.spent / row.limit
        lines.append(
            fmt.row_text(
                [
                    (_BUDGET_LABELS.get(row.name, row.name), 7, "bold"),
                    (spent, -value_width, ""),
                    (left, -left_width, ""),
                    (
                        fmt.fill_bar(fraction, bar_width) if row.limit is not None else "",
                        bar_width,
                        "red" if fraction >= 0.9 else "green",
                    ),
                ]
            )
        )
    left_s = time_left(snapshot)
    if snapshot.done:
        estimate = f"done after {fmt.duration(snapshot.elapsed_s)}"
    elif left_s is None:
        estimate = "time left: unknown (no limit)"
    else:
        estimate = (
            f"time left ≈ {fmt.duration(left_s)} (elapsed {fmt.duration(snapshot.elapsed_s)})"
        )
    lines.append(Text(estimate, style="italic", no_wrap=True, overflow="ellipsis"))
    return Panel(
        Text("\n").join(lines),
        title="budget · spent / limit · left",
        title_align="left",
        padding=(0, 1),
    )


def proposals_panel(snapshot: StudySnapshot, width: int, height: int = 4) -> Panel:
    p = snapshot.proposals
    inner = max(20, width - _PANEL_PADDING)
    duplicates = "duplicates dropped" if inner >= 40 else "dups dropped"
    body = Text(no_wrap=True, overflow="ellipsis")
    body.append(f"generated {p.generated}  {duplicates} {p.duplicates}")
    body.append(f"\nkept {p.kept}  rejected {p.rejected}  waiting {p.waiting}")
    if p.reasons:  # why answers were not instructions, most common first
        ranked = sorted(p.reasons.items(), key=lambda item: (-item[1], item[0]))
        body.append("\n" + "  ".join(f"{why.replace('_', ' ')} {n}" for why, n in ranked))
    return Panel(
        body,
        title=f"proposals · new share {p.new_candidate_share:.0%}",
        title_align="left",
        padding=(0, 1),
    )


# -- lines and the whole screen -----------------------------------------------------------------


def status_line(snapshot: StudySnapshot, notice: str = "", source: str = "") -> Text:
    """Status, then a key's notice (first, so a narrow screen still shows it), the study,
    elapsed time and ETA, and the study's last message when there is no notice."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"● {snapshot.status}", style=_STATUS_STYLE.get(snapshot.status, "bold"))
    if notice:
        line.append("  │ ", style="dim")
        line.append(notice, style="bold yellow")
        line.append(" │", style="dim")
    line.append(
        f"  {snapshot.task} · {snapshot.policy} · n={snapshot.n} · study {snapshot.study_id}"
    )
    if source:
        line.append(f" @ {source}", style="dim")
    line.append(f"  {fmt.duration(snapshot.elapsed_s)}")
    if snapshot.done and snapshot.winner is not None:
        line.append(f"  winner #{snapshot.winner}", style="bold green")
    else:
        left_s = time_left(snapshot)
        if left_s is not None:
            line.append(f"  ETA {fmt.duration(left_s)}")
    if snapshot.message and not notice:
        line.append("  │ ", style="dim")
        line.append(snapshot.message)
    return line


def help_line() -> Text:
    return Text(help_text(), style="dim", no_wrap=True, overflow="ellipsis")


class _Sized:
    """A region drawn by `draw(width, height)` at the size the layout gives it."""

    def __init__(self, draw: Callable[[int, int], Panel]) -> None:
        self._draw = draw

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or options.max_height
        yield self._draw(options.max_width, height)


def screen(
    snapshot: StudySnapshot, *, selected: int | None = None, notice: str = "", source: str = ""
) -> Layout:
    """The whole screen; it fills the console's height (panels fixed, the leaderboard the rest)."""
    top_rows = 4 + 2  # throughput
    several = pooled(snapshot)
    limiter_rows = (
        len(snapshot.endpoints) + 3 if several else 2 * max(1, len(snapshot.limiters)) + 2
    )
    endpoints = endpoints_panel if several else limiter_panel
    panels_height = max(top_rows + limiter_rows, 8 + 4)
    root = Layout(name="screen")
    errors = list(snapshot_errors(snapshot).items())[-3:]  # the first failure of each kind
    error_rows = [
        Layout(
            Text(f"✗ {kind}: {message}", style="bold red", no_wrap=True, overflow="ellipsis"),
            name=f"error-{kind}",
            size=1,
        )
        for kind, message in errors
    ]
    warning = [
        Layout(
            Text(f"warning: {text}", style="bold yellow", overflow="ellipsis"),
            name="warning",
            size=3,
        )
        for text in snapshot.warnings[-1:]  # the newest; every one is in the report
    ]
    rows = len(held_out_rows(snapshot))  # once the study ended
    held_out = (
        [Layout(_Sized(lambda w, h: held_out_panel(snapshot, w)), name="held-out", size=rows + 2)]
        if rows
        else []
    )
    root.split_column(
        Layout(status_line(snapshot, notice, source), name="status", size=1),
        *error_rows,
        *warning,
        *held_out,
        Layout(
            _Sized(lambda w, h: leaderboard_panel(snapshot, w, h, selected)),
            name="leaderboard",
            ratio=1,
            minimum_size=4,
        ),
        Layout(name="panels", size=panels_height),
        Layout(help_line(), name="help", size=1),
    )
    root["panels"].split_row(Layout(name="left"), Layout(name="right"))
    root["left"].split_column(
        Layout(_Sized(lambda w, h: throughput_panel(snapshot, w, h)), size=top_rows),
        Layout(_Sized(lambda w, h: endpoints(snapshot, w, h)), ratio=1),
    )
    root["right"].split_column(
        Layout(_Sized(lambda w, h: budget_panel(snapshot, w, h)), size=8),
        Layout(_Sized(lambda w, h: proposals_panel(snapshot, w, h)), ratio=1),
    )
    return root


def plain_line(snapshot: StudySnapshot) -> str:
    """One line of progress for a log or a pipe."""
    budgets = {row.name: row for row in snapshot.budgets}
    calls = budgets.get("scoring_calls")
    spent = f"{calls.spent:.0f}" if calls else "0"
    limit = f"/{calls.limit:.0f}" if calls is not None and calls.limit is not None else ""
    arms = ordered_arms(snapshot)
    in_play = sum(1 for row in arms if row.state in ("leader", "active", "open"))
    leader = next((row for row in arms if row.arm == snapshot.winner), None)
    found = leader_rule(snapshot)
    rule = f" ({found[0]}, not highest mean)" if found is not None else ""
    lead = (
        f" | leader #{leader.arm}{rule} {leader.mean:.3f} [{leader.lower:.2f}, {leader.upper:.2f}] "
        f"{leader.pulls}/{leader.n} {fmt.shorten(leader.instruction, 40)!r}"
        if leader
        else ""
    )
    t = snapshot.throughput
    eta = None if snapshot.done else time_left(snapshot)
    away = [
        f"{row.endpoint} {row.state}" + (f" {fmt.duration(row.cooled_s)}" if row.cooled_s else "")
        for row in snapshot.endpoints
        if row.state != "ok"
    ]
    return (
        f"{snapshot.status} {fmt.duration(snapshot.elapsed_s)} | {spent}{limit} scoring calls | "
        f"{len(arms)} candidates ({in_play} in play){lead} | {t.calls_per_s:.1f} calls/s "
        f"p95 {fmt.seconds_ms(t.latency_p95_s)} | {t.retries} retries {t.rate_limited} x 429 "
        f"{t.errors} errors"
        + (f" | {', '.join(away)}" if away else "")
        + (f" | ETA {fmt.duration(eta)}" if eta is not None else "")
    )
