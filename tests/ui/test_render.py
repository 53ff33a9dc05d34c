"""The screen rendered to text at fixed sizes: what each panel shows, the leader marked, bars,
numbers and truncation; and the plain line."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.study.snapshot import ArmRow, EndpointRow, LimiterRow, StudySnapshot
from engine.ui import text as fmt
from engine.ui.render import leaderboard_panel, plain_line, pooled
from engine.ui.state import ordered_arms
from tests.ui.snapshots import LONG_TEXT, line_of, make_snapshot, render, render_screen


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40)])
def test_the_screen_fills_the_console_exactly(width: int, height: int) -> None:
    text = render_screen(make_snapshot(), width, height, selected=1)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == height
    assert all(len(line) <= width for line in lines)
    assert lines[0].startswith("● running  larger_number · lucb · n=200 · study a1b2c3d4e5f6")
    assert "1m15s" in lines[0] and "ETA 40s" in lines[0]
    assert lines[-1].startswith("C/c conc  R/r rate  B/b budget  N/n new  p pause")
    assert "d drop  s stop  q quit" in lines[-1]


def test_80x24_leaderboard_marks_leader_selection_and_cuts_text() -> None:
    text = render_screen(make_snapshot(), 80, 24, selected=3)
    assert "leaderboard · 6 candidates · 3 in play · 1 complete" in text
    leader = line_of(text, "★ leader")
    assert "#1" in leader and "0.810" in leader and "90/200" in leader and "initial" in leader
    # the long instruction is cut to the column, with an ellipsis
    assert "Read both numbers" in leader and leader.rstrip(" │").endswith("…")
    assert LONG_TEXT not in text
    selected = line_of(text, "▶")
    assert "▶#3" in selected and "res←#1" in selected and "70/200" in selected
    assert "elim." in line_of(text, "#2 ")
    assert "dropped" in line_of(text, "#5 ")
    assert "complete" in line_of(text, "#4 ")
    # rows in board order: the leader, in play by mean, complete, eliminated, dropped
    order = [text.index(f"#{arm} ") for arm in (1, 3, 0, 4, 2, 5)]
    assert order == sorted(order)


def test_80x24_panels_show_the_numbers() -> None:
    text = render_screen(make_snapshot(), 80, 24)
    assert "now  152.5 calls/s ▁▁▅███" in text
    assert "latency p50 39ms  p95 1.25s" in text
    assert "in flight 14 of concurrency 16" in text  # 16 in flight, 2 of them proposal calls
    assert "retries 7  429s 3  errors 2" in text
    requests = line_of(text, " req ")
    assert "target" in requests and "75%" in requests and "6000 rpm" in requests
    assert "███▊░" in requests  # 75 % of 5 cells: 3 full and six eighths
    tokens = line_of(text, " tok ")
    assert "aimd" in tokens and "25%" in tokens and "90.0k tpm" in tokens
    scoring = line_of(text, "scoring ")
    assert "1234 / 2000" in scoring and "766" in scoring and "█" in scoring
    assert "13 / ∞" in line_of(text, "propose ")
    assert "45.2k / ∞" in line_of(text, "tokens ")
    assert "$0.013 / $1.00" in line_of(text, "dollars ") and "$0.99" in text
    assert "1m15s / 10m" in line_of(text, "time    ") and "8m45s" in text
    assert "time left ≈ 40s (elapsed 1m15s)" in text
    assert "proposals · new share 25%" in text
    assert "generated 53  dups dropped 14" in text
    assert "kept 6  rejected 1  waiting 2" in text


def test_120x40_shows_intervals_long_origins_and_more_text() -> None:
    text = render_screen(make_snapshot(), 120, 40, selected=1)
    leader = line_of(text, "★ leader")
    assert "▶#1" in leader
    assert "0.70-0.90" in leader
    # the confidence bar: 16 cells over [0, 1], the interval heavy, the mean a dot
    assert fmt.confidence_bar(0.70, 0.81, 0.90, 16) == "───────────━●━━─"
    assert "───────────━●━━─" in leader
    assert "Read both numbers carefully, compare them" in leader and "…" in leader
    assert "resample ←#1" in line_of(text, "#3 ")
    assert "eliminated" in line_of(text, "#2 ")
    assert "duplicates dropped 14" in text
    assert "$0.013 / $1.00" in text and "1m15s / 10m" in text


def test_a_long_board_scrolls_to_keep_the_selection_visible() -> None:
    many = tuple(
        ArmRow(
            i, f"instruction number {i}", 0.9 - i / 100, 0.5, 0.95, 10, 0, 200, "active", "initial"
        )
        for i in range(50)
    )
    snapshot = make_snapshot(arms=many, winner=None)
    top = render_screen(snapshot, 80, 24, selected=0)
    assert "▶#0" in top and "#5 " in top and "#40 " not in top
    assert "… 44 below (↑↓ or j/k to scroll)" in top
    middle = render_screen(snapshot, 80, 24, selected=30)
    assert "▶#30" in middle and "#0 " not in middle
    assert "above" in middle and "below" in middle
    bottom = render_screen(snapshot, 80, 24, selected=49)
    assert "▶#49" in bottom and "below" not in bottom


def test_edge_states_empty_board_unlimited_limits_and_done() -> None:
    waiting = render_screen(
        make_snapshot(
            arms=(),
            winner=None,
            limiters=(LimiterRow("target", None, None, 1.0, 1.0, False),),
            eta_s=None,
            budgets=(),
        ),
        80,
        24,
    )
    assert "waiting for the first candidates…" in waiting
    assert "no limit" in line_of(waiting, " req ") and "%" not in line_of(waiting, " req ")
    assert "time left: unknown (no limit)" in waiting
    done = render_screen(
        make_snapshot(status="finished", done=True, message="budget reached"), 80, 24
    )
    assert done.startswith("● finished") and "winner #1" in done.splitlines()[0]
    assert "done after 1m15s" in done
    unpulled = replace(make_snapshot().arms[0], pulls=0, mean=0.5)
    board = render(leaderboard_panel(make_snapshot(arms=(unpulled,)), 80, 6), 80, 6)
    assert "    - ─────━━━── " in line_of(board, "#0 ")  # no mean (and no dot) before a pull
    low = replace(make_snapshot().arms[0], arm=9, mean=0.3, pulls=10)
    order = [row.arm for row in ordered_arms(make_snapshot(arms=(unpulled, low)))]
    assert order == [9, 0]  # a candidate not pulled yet comes after those with a mean


def test_a_notice_replaces_the_message_on_the_status_line() -> None:
    plain = render_screen(make_snapshot(), 120, 40)
    assert "│ variant round 1: 6 candidates" in plain.splitlines()[0]
    noticed = render_screen(
        make_snapshot(), 120, 40, notice="concurrency 16 -> 20", source="in-process"
    )
    first = noticed.splitlines()[0]
    assert first.startswith("● running  │ concurrency 16 -> 20 │  larger_number")
    assert "variant round" not in first
    assert "@ in-process" in first


def test_plain_line() -> None:
    line = plain_line(make_snapshot())
    assert line.startswith("running 1m15s | 1234/2000 scoring calls | 6 candidates (3 in play)")
    assert "leader #1 0.810 [0.70, 0.90] 90/200 'Read both numbers carefully, compare th…'" in line
    assert "152.5 calls/s p95 1.25s | 7 retries 3 x 429 2 errors | ETA 40s" in line
    assert "\n" not in line


def pooled_snapshot() -> StudySnapshot:
    """Three scoring endpoints (one cooled down, one tested after a cool-down) and a proposal
    endpoint, each with its limiter row."""
    rows = (
        EndpointRow("gpu-a", "target", "m", "http://a/v1", 1.0, 400, 0.48, 12, 0.21, 0.4, 0, 0),
        EndpointRow("gpu-b", "target", "m", "http://b/v1", 1.0, 380, 0.46, 11, 0.22, 0.4, 3, 0),
        EndpointRow(
            "gpu-c", "target", "m", "http://c/v1", 1.0, 50, 0.06, 0, 0.2, 0.3, 0, 7, "cooled", 12.0
        ),
        EndpointRow("proposal", "proposal", "m", "http://e/v1", 1.0, 20, 1.0, 0, 1.2, 2.0, 0, 0),
    )
    limiters = tuple(LimiterRow(r.endpoint, 1200.0, None, 0.5, 1.0, False) for r in rows)
    return replace(make_snapshot(), endpoints=rows, limiters=limiters)


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40)])
def test_several_endpoints_show_one_line_each(width: int, height: int) -> None:
    snapshot = pooled_snapshot()
    assert pooled(snapshot) and not pooled(make_snapshot())
    text = render_screen(snapshot, width, height)
    assert "endpoints" in text and " req " not in text  # the endpoints panel, not the limiter's
    first = line_of(text, "gpu-a ")
    assert "●" in first and "48%" in first and "210ms" in first and "1200 rpm" in first
    assert "3" in line_of(text, "gpu-b ").split("220ms")[1]  # its 429s
    cooled = line_of(text, "gpu-c ")
    assert "✗" in cooled and "cooled 12s" in cooled and "rpm" not in cooled
    assert "100%" in line_of(text, "│ proposal ")
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == height and all(len(line) == width for line in lines)


def test_the_plain_line_names_an_endpoint_out_of_use() -> None:
    line = plain_line(pooled_snapshot())
    assert "| gpu-c cooled 12s |" in line and "gpu-a" not in line


def test_rejections_by_reason_and_the_warning_are_shown() -> None:
    base = make_snapshot()
    proposals = replace(base.proposals, rejected=6, reasons={"question": 1, "about_the_task": 5})
    warning = "nothing is being learned: all 24 answers so far score 0"
    snapshot = replace(base, proposals=proposals, warnings=(warning,))
    text = render_screen(snapshot, 100, 30)
    assert "about the task 5  question 1" in text
    assert f"warning: {warning}" in text
    assert "warning:" not in render_screen(base, 100, 30)
