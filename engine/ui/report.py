"""The report at the end of a study: a readable table (rich) of the winner, the runner-up and
the human instruction with their held-out scores, the leaderboard, and the spend beside what
full evaluation would have cost. Pure functions of a `StudyResult`; `render_report` prints."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from engine.study.budgets import Spend
from engine.study.evaluation import Evaluation
from engine.study.result import StudyResult
from engine.ui.lineage import origin_label
from engine.ui.proof import pick_role, proof_line

__all__ = [
    "build_report",
    "candidates_table",
    "demos_table",
    "render_report",
    "spend_table",
    "with_demos",
]


def _clip(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _score(evaluation: Evaluation | None) -> tuple[str, str]:
    if evaluation is None:
        return ("-", "")
    low, high = evaluation.test_ci
    failed = f", {evaluation.failed} failed" if evaluation.failed else ""
    return (f"{evaluation.test_score:.3f}", f"[{low:.3f}, {high:.3f}] n={evaluation.n}{failed}")


def with_demos(instruction: str, demos: Sequence[object] | None, width: int = 60) -> str:
    """A candidate's instruction as a board shows it, and its own demo set when it has one
    (the demo search): ``Translate it. + 3 demos``."""
    if demos is None:
        return _clip(instruction, width)
    return f"{_clip(instruction, max(10, width - 10))} + {len(demos)} demos"


def demos_table(title: str, demos: Sequence[tuple[str, str]]) -> Table:
    """A candidate's own demos, in the order its prompt shows them."""
    table = Table(title=title, title_justify="left")
    for column in ("#", "input", "output"):
        table.add_column(column)
    for place, (shown, output) in enumerate(demos, start=1):
        table.add_row(str(place), Text(_clip(shown, 60)), Text(_clip(output, 40)))
    return table


def build_report(result: StudyResult, *, top: int = 10) -> Group:
    title = Text(
        f"Study {result.study_id} on task {result.task!r} with policy {result.policy}: "
        f"{result.status} ({result.reason})",
        style="bold",
    )
    parts: list[Table | Text] = [title]
    if result.error:
        parts.append(Text(result.error, style="red"))
    proven = result.certificate is not None and result.certificate.proven
    parts.append(Text(proof_line(result.certificate), style="green" if proven else "yellow"))
    for warning in result.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    final = _held_out_table(result)
    if final.row_count:
        parts.append(final)
    if result.winner is not None and result.winner.demos is not None:
        parts.append(demos_table("The winner's demos (the demo search)", result.winner.demos))
    parts.append(_leaderboard(result, top))
    parts.append(spend_table(result.spend, result.full_evaluation_calls))
    return Group(*parts)


def _held_out_table(result: StudyResult) -> Table:
    """The winner, the runner-up and the human instruction on the test pool (rows for those
    that were evaluated)."""
    final = Table(title="Held-out test pool (95 % interval)", title_justify="left")
    final.add_column("role")
    final.add_column("instruction")
    final.add_column("test score", justify="right")
    final.add_column("interval")
    for role, evaluation in (
        (pick_role(result.certificate), result.winner),
        ("runner-up", result.runner_up),
        ("human", result.human),
        ("baseline", result.baseline),
    ):
        if evaluation is not None:
            score, interval = _score(evaluation)
            final.add_row(
                role, with_demos(evaluation.instruction, evaluation.demos, 70), score, interval
            )
    return final


def candidates_table(title: str) -> Table:
    """An empty leaderboard: a row per candidate, its mean and bounds on the scoring pool."""
    board = Table(title=title, title_justify="left")
    for column, justify in (
        ("#", "right"),
        ("instruction", "left"),
        ("origin", "left"),
        ("mean", "right"),
        ("bounds", "left"),
        ("pulls", "right"),
        ("state", "left"),
    ):
        board.add_column(column, justify=justify)  # type: ignore[arg-type]
    return board


def _leaderboard(result: StudyResult, top: int) -> Table:
    """The winner first, then the `top` best by mean on the scoring pool (unscored last)."""
    board = candidates_table(f"Candidates (scoring pool n={result.n})")
    ranked = sorted(
        result.candidates,
        key=lambda c: (c.arm != result.winner_arm, -c.mean if c.pulls else 1.0, c.arm),
    )
    for candidate in ranked[:top]:
        board.add_row(
            str(candidate.arm),
            with_demos(candidate.instruction, candidate.demos),
            origin_label(candidate.origin, candidate.parents),
            f"{candidate.mean:.3f}" if candidate.pulls else "-",
            f"[{candidate.lower:.2f}, {candidate.upper:.2f}]",
            str(candidate.pulls),
            candidate.state,
        )
    if len(ranked) > top:
        board.add_row("", f"... and {len(ranked) - top} more", "", "", "", "", "")
    return board


def spend_table(spend: Spend, full_evaluation_calls: int) -> Table:
    """What the study spent, beside what full evaluation would have cost."""
    full = full_evaluation_calls
    ratio = f"{spend.scoring_calls / full:.1%}" if full else "-"
    summary = Table(title="Spend (across resumes)", title_justify="left", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row(
        "scoring calls",
        f"{spend.scoring_calls:,} = {ratio} of full evaluation ({full:,})",
    )
    share = spend.proposal_share()
    proposals = f"{spend.proposal_calls:,}"
    if spend.tokens:
        proposals += f" ({share['tokens']:.1%} of the tokens)"
    summary.add_row("proposal calls", proposals)
    summary.add_row("test-pool calls", f"{spend.evaluation_calls:,}")
    summary.add_row("answered by the cache", f"{spend.cached_calls:,}")
    summary.add_row("failed for good", f"{spend.failed_calls:,}")
    summary.add_row("tokens", f"{spend.tokens:,}")
    summary.add_row("dollars", f"${spend.usd:,.4f}")
    summary.add_row("seconds", f"{spend.seconds:,.1f}")
    return summary


def render_report(result: StudyResult, console: Console | None = None) -> None:
    (console or Console()).print(build_report(result))
