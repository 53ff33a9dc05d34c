"""Studies read back, as terminal tables (rich): the list of a state folder's studies, and one
study shown whole (`ape-engine studies`, `ape-engine show`). Pure functions of
`engine.study.record` values. Every text that came from a model or a file is a `Text`, never
markup: an answer holding ``[bold]`` shows as written.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from engine.study.record import AnswerRow, HeldOut, StudyRecord
from engine.study.snapshot import ArmRow
from engine.ui.lineage import Node, families, kind_rows, origin_label
from engine.ui.proof import pick_role, proof_line
from engine.ui.report import candidates_table, demos_table, spend_table, with_demos

__all__ = [
    "build_show",
    "build_studies",
    "clip",
    "date",
    "lineage_tree",
    "render_show",
    "wrong_answers",
]
_TREE_NODES = 40  # candidates the lineage tree shows at most

_ROLES = {"winner": "winner", "runner_up": "runner-up", "human": "human"}


def clip(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def date(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "-"


def _held(row: HeldOut | None) -> str:
    if row is None or row.n == 0:
        return "-"
    low, high = row.interval
    return f"{row.score:.3f} [{low:.2f}, {high:.2f}]"


def build_studies(records: Iterable[StudyRecord]) -> Table:
    """One row per study: id, task, status, model, winner, held-out score, spend, date."""
    table = Table(title="Studies", title_justify="left")
    for column, justify in (
        ("id", "left"),
        ("task", "left"),
        ("status", "left"),
        ("model", "left"),
        ("winner", "left"),
        ("held-out", "right"),
        ("spend", "right"),
        ("started", "left"),
    ):
        # ids and dates are looked up and copied: never broken over lines
        whole = column in ("id", "status", "started")
        table.add_column(column, justify=justify, no_wrap=whole)  # type: ignore[arg-type]
    for record in records:
        winner = record.arms[record.winner] if record.winner is not None else None
        spend = record.spend
        table.add_row(
            Text(record.study_id),
            Text(clip(record.task.name, 30)),
            Text(record.status),
            Text(clip(record.model, 24)),
            Text(f"#{winner.arm} {clip(winner.instruction, 40)}" if winner else "-"),
            Text(_held(record.held("winner"))),
            Text(f"${spend.usd:.4f}, {spend.scoring_calls:,} calls"),
            Text(date(record.created)),
        )
    return table


def build_show(record: StudyRecord, *, top: int = 10, wrong: int = 3) -> Group:
    """The study whole: what it is, its held-out scores, the leaderboard with intervals, which
    candidate came from which (the lineage), per candidate (the `top` best) up to `wrong`
    examples it got wrong, the proposal calls by kind, and the spend."""
    parts: list[RenderableType] = [_title(record)]
    if record.error:
        parts.append(Text(record.error, style="red"))
    proven = record.certificate is not None and record.certificate.proven
    parts.append(Text(proof_line(record.certificate), style="green" if proven else "yellow"))
    for warning in record.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    if record.held_out:
        parts.append(_held_out(record))
    parts.append(_leaderboard(record, top))
    winner = record.arms[record.winner] if record.winner is not None else None
    if winner is not None and winner.demos is not None:
        parts.append(_winner_demos(winner))
    tree = lineage_tree(record)
    if tree is not None:
        parts.append(tree)
    parts.extend(_wrong_tables(record, top, wrong))
    if record.proposals:
        parts.append(_kinds(record))
    full = len(record.arms) * record.pools.scoring
    parts.append(spend_table(record.spend, full))
    return Group(*parts)


def _title(record: StudyRecord) -> Text:
    reason = f" ({record.reason})" if record.reason else ""
    models = record.models.get("target", {}).get("model") or record.model
    lines = [
        f"Study {record.study_id} on task {record.task.name!r}: {record.status}{reason}",
        f"model {models}; policy {record.policy}; started {date(record.created)}; "
        f"pools: {record.pools.scoring} scoring, {record.pools.test} test examples",
        f"journal {record.path}",
    ]
    return Text("\n".join(lines), style="bold")


def _held_out(record: StudyRecord) -> Table:
    table = Table(title="Held-out test pool (95 % interval)", title_justify="left")
    for column in ("role", "#", "instruction", "test score", "n"):
        table.add_column(column)
    for row in record.held_out:
        role = pick_role(record.certificate) if row.role == "winner" else row.role
        table.add_row(
            Text(_ROLES.get(role, role)),
            Text("" if row.arm is None else str(row.arm)),
            Text(
                with_demos(row.instruction, None if row.arm is None else record.arms[row.arm].demos)
            ),
            Text(_held(row)),
            Text(str(row.n)),
        )
    return table


def _leaderboard(record: StudyRecord, top: int) -> Table:
    board = candidates_table(
        f"Candidates (scoring pool n={record.pools.scoring}; bounds of the pool mean)"
    )
    ranked = record.ranked()
    for arm in ranked[:top]:
        board.add_row(
            Text(str(arm.arm)),
            Text(with_demos(arm.instruction, arm.demos)),
            Text(origin_label(arm.origin, arm.parents)),
            Text(f"{arm.mean:.3f}" if arm.pulls else "-"),
            Text(f"[{arm.lower:.2f}, {arm.upper:.2f}]"),
            Text(str(arm.pulls)),
            Text(arm.state),
        )
    if len(ranked) > top:
        board.add_row("", Text(f"... and {len(ranked) - top} more"), "", "", "", "", "")
    return board


def _winner_demos(arm: ArmRow) -> RenderableType:
    title = f"#{arm.arm}'s demos (the demo search)"
    if arm.demo_texts is not None:
        return demos_table(title, arm.demo_texts)
    places = ", ".join(f"#{place}" for place in arm.demos or ())
    return Text(f"{title}: the demo pool's {places} (the task was not loaded)")


def _node_text(record: StudyRecord, node: Node) -> Text:
    arm = record.arms[node.arm]
    also = f" with #{', #'.join(map(str, node.also_from))}" if node.also_from else ""
    mean = f"{arm.mean:.3f}" if arm.pulls else "-"
    star = " ★ winner" if node.arm == record.winner else ""
    return Text(f"#{node.arm} {node.kind}{also} {mean}{star}  {clip(arm.instruction, 50)}")


def lineage_tree(record: StudyRecord) -> Tree | None:
    """Which candidate came from which, by which kind: every candidate with a parent or a
    child, under its first parent, the best families first (None: no candidate has one)."""
    lineage = {arm.arm: (arm.origin, arm.parents) for arm in record.arms}
    roots = families(lineage, order=record.ranking)
    if not roots:
        return None
    tree = Tree(Text("Lineage (kind, mean on the scoring pool)", style="bold"))
    shown = 0
    stack: list[tuple[Tree, Node]] = [(tree, root) for root in reversed(roots)]
    hidden = 0
    while stack:
        branch, node = stack.pop()
        if shown >= _TREE_NODES:
            hidden += 1
        else:
            shown += 1
            leaf = branch.add(_node_text(record, node))
            stack.extend((leaf, child) for child in reversed(node.children))
            continue
        stack.extend((branch, child) for child in node.children)
    if hidden:
        tree.add(Text(f"... and {hidden} more", style="dim"))
    return tree


def _kinds(record: StudyRecord) -> Table:
    table = Table(title="Proposal calls by kind", title_justify="left")
    for column, justify in (("kind", "left"), ("calls", "right"), ("tokens", "right"),
                            ("answers", "right"), ("kept", "right"), ("rejected", "right"),
                            ("why rejected", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in kind_rows(record.proposals, [arm.origin for arm in record.arms]):
        table.add_row(
            row.kind,
            f"{row.calls:,}",
            f"{row.tokens:,}",
            str(row.generated),
            str(row.kept),
            str(row.rejected),
            Text(row.reasons),
        )
    return table


def wrong_answers(record: StudyRecord, arm: int) -> list[AnswerRow]:
    """A candidate's answers that scored below 1 on the scoring pool, worst first."""
    rows = [row for row in record.answers if row.arm == arm and row.pool == "scoring"]
    return sorted((row for row in rows if row.reward < 1.0), key=lambda row: row.reward)


def _wrong_tables(record: StudyRecord, top: int, wrong: int) -> list[RenderableType]:
    if wrong <= 0:
        return []
    parts: list[RenderableType] = []
    for arm in record.ranked()[:top]:
        if arm.pulls:
            parts.append(_wrong_table(record, arm, wrong))
    return parts


def _wrong_table(record: StudyRecord, arm: ArmRow, wrong: int) -> RenderableType:
    rows = wrong_answers(record, arm.arm)
    head = f"#{arm.arm} {clip(arm.instruction, 60)}: {len(rows)} of {arm.pulls} wrong"
    if not rows:
        return Text(head)
    table = Table()  # the heading above it, not its title: a title wraps to the table's width
    for column in ("example", "input", "expected", "answer", "reward"):
        table.add_column(column)
    for row in rows[:wrong]:
        table.add_row(
            Text(str(row.example)),
            Text(clip(row.input, 40) if record.with_task else "(task not loaded)"),
            Text(clip(" | ".join(row.expected), 24)),
            Text(clip(row.answer, 40) + (f" ({clip(row.note, 60)})" if row.note else "")),
            Text(f"{row.reward:.2f}"),
        )
    return Group(Text(head, style="italic"), table)


def render_show(record: StudyRecord, console: Console | None = None, **options: int) -> None:
    (console or Console()).print(build_show(record, **options))
