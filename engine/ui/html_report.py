"""A study's report as one HTML page that opens offline (`show --html`, `run --html`).

The page holds everything itself: the style inline, the plots (`engine.ui.plots`) as base64
PNG images, no script and no external URL. Without matplotlib it says how to get the plots
and the tables still render. Every text from the journal (instructions, answers, inputs,
model names) is escaped: a model's answer is shown, never interpreted.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from engine import __version__
from engine.errors import ConfigError
from engine.study.record import AnswerRow, StudyRecord
from engine.ui.lineage import Node, families, kind_rows, origin_label
from engine.ui.plots import PLOTS, plots_available
from engine.ui.proof import pick_role, proof_line
from engine.ui.show import clip, date

__all__ = ["ANSWER_ROWS", "NO_PLOTS", "render_html", "write_html"]

#: Rows of the per-example table, wrong answers first; the rest are in `ape-engine export`.
ANSWER_ROWS = 2000
NO_PLOTS = (
    "Plots need matplotlib, which is not installed: pip install 'ape-engine[report]' (or make "
    "install in a checkout), then write this page again with ape-engine show JOURNAL --html "
    "FILE. The tables below are complete without it."
)
_ROLES = {"winner": "winner", "runner_up": "runner-up", "human": "human", "": ""}
_AGAINST = (("runner_up", "the runner-up"), ("human", "the human instruction"))

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1f2328; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.6em 0; width: 100%; }
th, td { border-bottom: 1px solid #d0d7de; padding: 3px 8px; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.wrong td.reward { color: #cf222e; font-weight: 600; }
tr.winner td { background: #ddf4ff; }
.meta { color: #59636e; } .note { background: #fff8c5; padding: 0.6em 1em; }
.proven { background: #dafbe1; padding: 0.6em 1em; }
.error { color: #cf222e; } figure { margin: 1em 0; } img { max-width: 100%; }
td.text { white-space: pre-wrap; word-break: break-word; max-width: 28em; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(table_id: str, head: list[str], rows: list[str]) -> str:
    header = "".join(f"<th>{_e(name)}</th>" for name in head)
    return f'<table id="{table_id}"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _cell(value: object, kind: str = "") -> str:
    return f'<td class="{kind}">{_e(value)}</td>' if kind else f"<td>{_e(value)}</td>"


def _interval(low: float, high: float) -> str:
    return f"[{low:.3f}, {high:.3f}]"


def _header(record: StudyRecord) -> str:
    target = record.models.get("target", {}) if isinstance(record.models, dict) else {}
    model = target.get("model") or record.model
    reason = f" ({record.reason})" if record.reason else ""
    parts = [
        f"<h1>Study {_e(record.study_id)} on task {_e(record.task.name)}</h1>",
        f'<p class="meta">{_e(record.status)}{_e(reason)}; model {_e(model)}; policy '
        f"{_e(record.policy)}; started {_e(date(record.created))}; pools: "
        f"{record.pools.scoring} scoring, {record.pools.test} test examples; journal "
        f"{_e(record.path)}</p>",
    ]
    if record.error:
        parts.append(f'<p class="error">{_e(record.error)}</p>')
    proven = record.certificate is not None and record.certificate.proven
    kind = "proven" if proven else "note"
    parts.append(f'<p class="{kind}" id="proof">{_e(proof_line(record.certificate))}</p>')
    parts.extend(f'<p class="note">warning: {_e(text)}</p>' for text in record.warnings)
    return "\n".join(parts)


def _figures(record: StudyRecord) -> dict[str, str]:
    """Plot id -> an inline <figure>; empty without matplotlib."""
    if not plots_available():
        return {}
    figures = {}
    for plot_id, title, shown, draw in PLOTS:
        if shown(record):
            data = base64.b64encode(draw(record)).decode("ascii")
            figures[plot_id] = (
                f'<figure id="plot-{plot_id}"><img alt="{_e(title)}" '
                f'src="data:image/png;base64,{data}"></figure>'
            )
    return figures


def _held_out(record: StudyRecord, figures: dict[str, str]) -> str:
    rows = []
    for row in record.held_out:
        low, high = row.interval
        rows.append(
            f'<tr class="{row.role}">'
            + _cell(
                pick_role(record.certificate)
                if row.role == "winner"
                else _ROLES.get(row.role, row.role)
            )
            + _cell("" if row.arm is None else f"#{row.arm}")
            + _cell(row.instruction, "text")
            + _cell(f"{row.score:.3f}" if row.n else "-", "num")
            + _cell(_interval(low, high) if row.n else "-")
            + _cell(row.n, "num")
            + "</tr>"
        )
    if not rows:
        return (
            '<section id="held-out"><h2>Held-out test pool</h2><p>Not evaluated yet.</p></section>'
        )
    head = ["role", "#", "instruction", "test score", "95 % interval", "n"]
    against = [name for role, name in _AGAINST if record.held(role) is not None]
    pick = pick_role(record.certificate)
    versus = f": the {pick} against {' and '.join(against)}" if against else ""
    return (
        f'<section id="held-out"><h2>Held-out test pool{versus}</h2>'
        + figures.get("held-out", "")
        + _table("held-out-table", head, rows)
        + "</section>"
    )


def _demos(places: tuple[int, ...] | None, texts: tuple[tuple[str, str], ...] | None) -> str:
    """A candidate's own demo set, under its instruction (the demo search)."""
    if places is None:
        return ""
    if texts is None:
        return "\n+ demos: the demo pool's " + ", ".join(f"#{place}" for place in places)
    return "\n+ demos:" + "".join(f"\n  {shown!r} -> {output!r}" for shown, output in texts)


def _leaderboard(record: StudyRecord, figures: dict[str, str]) -> str:
    rows = []
    for arm in record.ranked():
        css = "winner" if arm.arm == record.winner else ""
        rows.append(
            f'<tr class="{css}">'
            + _cell(f"#{arm.arm}")
            + _cell(arm.instruction + _demos(arm.demos, arm.demo_texts), "text")
            + _cell(origin_label(arm.origin, arm.parents))
            + _cell(f"{arm.mean:.3f}" if arm.pulls else "-", "num")
            + _cell(_interval(arm.lower, arm.upper))
            + _cell(arm.pulls, "num")
            + _cell(arm.state)
            + "</tr>"
        )
    head = ["#", "instruction", "origin", "mean", "bounds", "calls", "state"]
    return (
        f'<section id="leaderboard"><h2>Leaderboard (scoring pool, n={record.pools.scoring})'
        "</h2>" + figures.get("forest", "") + _table("leaderboard-table", head, rows) + "</section>"
    )


def _node(record: StudyRecord, node: Node) -> str:
    arm = record.arms[node.arm]
    also = f" with #{', #'.join(map(str, node.also_from))}" if node.also_from else ""
    mean = f"{arm.mean:.3f}" if arm.pulls else "-"
    winner = " ★ winner" if node.arm == record.winner else ""
    text = f"#{node.arm} {node.kind}{also} {mean}{winner}: {clip(arm.instruction, 90)}"
    children = "".join(_node(record, child) for child in node.children)
    return f"<li>{_e(text)}" + (f"<ul>{children}</ul>" if children else "") + "</li>"


def _lineage(record: StudyRecord) -> str:
    """Which candidate came from which, by which kind, and the proposal calls by kind."""
    lineage = {arm.arm: (arm.origin, arm.parents) for arm in record.arms}
    roots = families(lineage, order=record.ranking)
    tree = "".join(_node(record, root) for root in roots)
    rows = [
        "<tr>"
        + _cell(row.kind)
        + "".join(
            _cell(value, "num")
            for value in (row.calls, row.tokens, row.generated, row.kept, row.rejected)
        )
        + _cell(row.reasons)
        + "</tr>"
        for row in kind_rows(record.proposals, [arm.origin for arm in record.arms])
    ]
    head = ["kind", "calls", "tokens", "answers", "kept", "rejected", "why rejected"]
    parts = ['<section id="lineage"><h2>Lineage: which candidate came from which</h2>']
    parts.append(
        f'<ul id="lineage-tree">{tree}</ul>' if tree else "<p>No candidate has a parent.</p>"
    )
    if rows:
        parts.append(_table("kinds-table", head, rows))
    return "".join(parts) + "</section>"


def _spend(record: StudyRecord, figures: dict[str, str]) -> str:
    spend = record.spend
    full = len(record.arms) * record.pools.scoring
    share = f" = {spend.scoring_calls / full:.1%} of full evaluation ({full:,})" if full else ""
    items = [
        ("scoring calls", f"{spend.scoring_calls:,}{share}"),
        ("proposal calls", f"{spend.proposal_calls:,}"),
        ("proposal calls' share of the tokens", f"{spend.proposal_share()['tokens']:.1%}"),
        ("test-pool calls", f"{spend.evaluation_calls:,}"),
        ("answered by the cache", f"{spend.cached_calls:,}"),
        ("failed for good", f"{spend.failed_calls:,}"),
        ("tokens", f"{spend.tokens:,}"),
        ("dollars", f"${spend.usd:,.4f}"),
        ("seconds", f"{spend.seconds:,.1f}"),
    ]
    rows = [f"<tr>{_cell(name)}{_cell(value, 'num')}</tr>" for name, value in items]
    return (
        '<section id="spend"><h2>Spend and convergence</h2>'
        + _table("spend-table", ["what", "value"], rows)
        + figures.get("convergence", "")
        + figures.get("calls", "")
        + "</section>"
    )


def _answer_row(row: AnswerRow, with_task: bool) -> str:
    css = "wrong" if row.reward < 1.0 else "right"
    return (
        f'<tr class="{css}">'
        + _cell("" if row.arm is None else f"#{row.arm}")
        + _cell(row.pool)
        + _cell(_ROLES.get(row.role, row.role))
        + _cell(row.example, "num")
        + _cell(row.input if with_task else "", "text")
        + _cell(" | ".join(row.expected), "text")
        + _cell(row.answer + (f" ({row.note})" if row.note else ""), "text")
        + f'<td class="num reward">{row.reward:.2f}</td>'
        + "</tr>"
    )


def _answers(record: StudyRecord) -> str:
    ordered = sorted(record.answers, key=lambda row: (row.reward, row.pool != "test"))
    rows = [_answer_row(row, record.with_task) for row in ordered[:ANSWER_ROWS]]
    wrong = sum(row.reward < 1.0 for row in record.answers)
    notes = [f"{wrong} of {len(record.answers)} answers scored below 1."]
    if not record.with_task:
        notes.append(
            "Inputs and expected outputs need the task the study was made on (it did not load "
            "as it was)."
        )
    if len(ordered) > ANSWER_ROWS:
        notes.append(
            f"The first {ANSWER_ROWS} are shown; ape-engine export JOURNAL --csv writes all."
        )
    head = ["candidate", "pool", "role", "example", "input", "expected", "answer", "reward"]
    return (
        '<section id="answers"><h2>Answers, wrong first</h2>'
        f"<p>{_e(' '.join(notes))}</p>" + _table("answers-table", head, rows) + "</section>"
    )


def render_html(record: StudyRecord) -> str:
    """The whole page."""
    figures = _figures(record)
    note = "" if plots_available() else f'<p class="note" id="no-plots">{_e(NO_PLOTS)}</p>'
    body = "\n".join(
        [
            _header(record),
            note,
            _held_out(record, figures),
            _leaderboard(record, figures),
            _lineage(record),
            _spend(record, figures),
            _answers(record),
            f'<footer class="meta">written by ape-engine {_e(__version__)}</footer>',
        ]
    )
    title = f"ape-engine study {record.study_id}: {record.task.name}"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n"
        "</body></html>\n"
    )


def write_html(record: StudyRecord, path: Path) -> None:
    """Write the page to `path`; a path that cannot be written is a `ConfigError` naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(record), encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"--html {str(path)!r}: cannot write it ({error.strerror})") from None
