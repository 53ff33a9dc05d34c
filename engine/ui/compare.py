"""Studies side by side (`ape-engine compare A B ...`): the same task on two target models, or
before and after a change -- each study's winner, its held-out score with the interval, the
human instruction's and the baseline's, the spend, the models, and the settings that differ.

Pure functions of `engine.study.record` values and each study's settings (by flat name, from
its journal's header): a rich table for the terminal, and one HTML page that opens offline,
drawn as `show --html` draws a study (`engine.ui.html_report`): the style inline, a plot as a
base64 PNG, every text escaped.
"""

from __future__ import annotations

import base64
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from engine import __version__
from engine.study.record import HeldOut, StudyRecord
from engine.ui.html_report import _STYLE, _cell, _e, _table
from engine.ui.plots import compared, plots_available
from engine.ui.show import clip, date

__all__ = ["Compared", "build_compare", "differing", "render_compare_html", "summary_rows"]

#: Settings that say where a study wrote, not what it was: never a difference worth showing.
_WHERE = frozenset({"journal", "cache", "cache_max_mb", "no_cache", "json_out", "answer_chars"})


@dataclass(frozen=True, slots=True)
class Compared:
    """One study of a comparison: its label (A, B, ...), its record and its settings."""

    label: str
    record: StudyRecord
    settings: dict[str, Any]  # by flat name, as the journal's header holds them


def labelled(records: Sequence[tuple[StudyRecord, dict[str, Any]]]) -> list[Compared]:
    """The studies labelled A, B, ... (then A1, B1, ... past Z), in the order given."""
    letters = string.ascii_uppercase
    return [
        Compared(letters[i % 26] + (str(i // 26) if i >= 26 else ""), record, settings)
        for i, (record, settings) in enumerate(records)
    ]


def differing(studies: Sequence[Compared]) -> list[tuple[str, list[Any]]]:
    """(flat name, each study's value) of the settings whose values differ, in the settings'
    order; where a study wrote is left out."""
    names: dict[str, None] = {}
    for study in studies:
        names.update(dict.fromkeys(study.settings))
    rows = []
    for name in names:
        if name in _WHERE:
            continue
        values = [study.settings.get(name) for study in studies]
        if any(value != values[0] for value in values[1:]):
            rows.append((name, values))
    return rows


def _held(row: HeldOut | None) -> str:
    if row is None:
        return "-"
    if row.n == 0:
        return "not scored"
    low, high = row.interval
    return f"{row.score:.3f} [{low:.3f}, {high:.3f}] n={row.n}"


def _model(record: StudyRecord, role: str) -> str:
    models = record.models if isinstance(record.models, dict) else {}
    entry = models.get(role) or {}
    return str(entry.get("model") or "-") if isinstance(entry, dict) else "-"


def _winner(record: StudyRecord) -> str:
    if record.winner is None or record.winner >= len(record.arms):
        return "-"
    arm = record.arms[record.winner]
    return f"#{arm.arm} {arm.instruction}"


def _scoring(settings: dict[str, Any], record: StudyRecord) -> str:
    checks = settings.get("checks")
    if checks:
        return "checks " + ", ".join(str(check.get("kind")) for check in checks)
    return f"{settings.get('scoring', 'exec')}, metric {record.task.metric or '-'}"


def summary_rows(studies: Sequence[Compared]) -> list[tuple[str, list[str]]]:
    """(what, each study's value) of the rows every comparison shows."""

    def row(what: str, value: Any) -> tuple[str, list[str]]:
        return what, [str(value(study.record, study.settings)) for study in studies]

    spend = [
        row("scoring calls", lambda r, s: f"{r.spend.scoring_calls:,}"),
        row("proposal calls", lambda r, s: f"{r.spend.proposal_calls:,}"),
        row("test-pool calls", lambda r, s: f"{r.spend.evaluation_calls:,}"),
        row("tokens", lambda r, s: f"{r.spend.tokens:,}"),
        row("dollars", lambda r, s: f"${r.spend.usd:,.4f}"),
        row("seconds", lambda r, s: f"{r.spend.seconds:,.1f}"),
    ]
    return [
        row("study", lambda r, s: r.study_id),
        row("task", lambda r, s: f"{r.task.name} ({r.task.fingerprint})"),
        row("status", lambda r, s: r.status),
        row("started", lambda r, s: date(r.created)),
        row("target model", lambda r, s: _model(r, "target")),
        row("proposal model", lambda r, s: _model(r, "proposal")),
        row("policy", lambda r, s: r.policy),
        row("scoring", lambda r, s: _scoring(s, r)),
        row("candidates", lambda r, s: len(r.arms)),
        row("winner", lambda r, s: _winner(r)),
        row("winner, held out", lambda r, s: _held(r.held("winner"))),
        row("runner-up, held out", lambda r, s: _held(r.held("runner_up"))),
        row("human, held out", lambda r, s: _held(r.held("human"))),
        row("baseline, held out", lambda r, s: _held(r.held("baseline"))),
        *spend,
    ]


def notes(studies: Sequence[Compared]) -> list[str]:
    """What to keep in mind: studies of other tasks (or of other examples), and whether each
    winner's held-out interval overlaps the first study's."""
    said = []
    tasks = {study.record.task.fingerprint for study in studies}
    if len(tasks) > 1:
        said.append(
            "the studies were made on different tasks (or other examples of one): their "
            "held-out scores are not measured on the same examples"
        )
    first = studies[0].record.held("winner")
    for study in studies[1:]:
        other = study.record.held("winner")
        if first is None or other is None or not first.n or not other.n:
            continue
        overlap = other.interval[0] <= first.interval[1] and first.interval[0] <= other.interval[1]
        verdict = (
            "the intervals overlap: the difference may be chance"
            if overlap
            else "the intervals do not overlap"
        )
        said.append(
            f"{study.label} - {studies[0].label}: winner held out "
            f"{other.score - first.score:+.3f} ({verdict})"
        )
    return said


def _shown(value: Any, width: int = 40) -> str:
    if value is None:
        return "-"
    return clip(value if isinstance(value, str) else repr(value), width)


def build_compare(studies: Sequence[Compared]) -> RenderableType:
    """The comparison as terminal tables: one column per study."""
    table = Table(title="Studies side by side", title_justify="left")
    table.add_column("")
    for study in studies:
        table.add_column(study.label, overflow="fold")
    for what, values in summary_rows(studies):
        width = 60 if what == "winner" else 40
        table.add_row(Text(what), *(Text(clip(value, width)) for value in values))
    parts: list[RenderableType] = [table]
    rows = differing(studies)
    if rows:
        changed = Table(title="Settings that differ", title_justify="left")
        changed.add_column("setting")
        for study in studies:
            changed.add_column(study.label, overflow="fold")
        for name, values in rows:
            changed.add_row(Text(name), *(Text(_shown(value)) for value in values))
        parts.append(changed)
    else:
        parts.append(Text("The studies' settings are the same (but for where they wrote)."))
    parts.extend(Text(f"note: {line}") for line in notes(studies))
    return Group(*parts)


# -- the page ----------------------------------------------------------------------------------


def _figure(studies: Sequence[Compared]) -> str:
    if not plots_available():
        return ""
    rows = []
    for study in studies:
        for role in ("winner", "human", "baseline"):
            held = study.record.held(role)
            if held is not None and held.n:
                rows.append((f"{study.label} {role}", role, held.score, *held.interval))
    if not rows:
        return ""
    data = base64.b64encode(compared(rows)).decode("ascii")
    return (
        '<figure id="plot-compare"><img alt="Held-out scores side by side" '
        f'src="data:image/png;base64,{data}"></figure>'
    )


def render_compare_html(studies: Sequence[Compared]) -> str:
    """The whole page: the studies side by side, the settings that differ, the plot."""
    head = ["", *(study.label for study in studies)]
    summary = [
        "<tr>" + _cell(what) + "".join(_cell(value, "text") for value in values) + "</tr>"
        for what, values in summary_rows(studies)
    ]
    changed = [
        "<tr>"
        + _cell(name)
        + "".join(_cell("-" if v is None else v, "text") for v in values)
        + "</tr>"
        for name, values in differing(studies)
    ]
    names = ", ".join(f"{study.label}: {study.record.study_id}" for study in studies)
    body = [
        f"<h1>{len(studies)} studies side by side</h1>",
        f'<p class="meta">{_e(names)}</p>',
        *(f'<p class="note">{_e(line)}</p>' for line in notes(studies)),
        '<section id="compare"><h2>Winner, held-out scores, models and spend</h2>'
        + _figure(studies)
        + _table("compare-table", head, summary)
        + "</section>",
        '<section id="settings"><h2>Settings that differ</h2>'
        + (
            _table("settings-table", ["setting", *head[1:]], changed)
            if changed
            else "<p>The same settings (but for where each study wrote).</p>"
        )
        + "</section>",
        f'<footer class="meta">written by ape-engine {_e(__version__)}</footer>',
    ]
    title = f"ape-engine: {names}"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
