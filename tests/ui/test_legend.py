"""The leaderboard's legend: when the leader (the policy's pick) is not the row with the highest
mean, the board says what "leader" means; when it is, the board says nothing more. The rows come
from a real LUCB policy early in a study, rendered by a recording console."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.search.factory import make_policy
from engine.search.policy import Pull
from engine.study.snapshot import ArmRow
from engine.ui.legend import leader_note
from engine.ui.render import plain_line
from tests.ui.snapshots import line_of, make_snapshot, render_screen

N = 200


def early_lucb_rows() -> tuple[ArmRow, ...]:
    """Arm 0: 45 of 60 right; arm 1: 4 of 4 right (a higher mean, a much wider interval)."""
    policy = make_policy("lucb", n=N, seed=1, rewards="binary")
    for _ in range(2):
        policy.add_arm()
    for arm, right, pulls in ((0, 45, 60), (1, 4, 4)):
        for example in range(pulls):
            policy.observe(Pull(arm, example), 1.0 if example < right else 0.0)
    leader = policy.recommendation()
    rows = []
    for arm in range(2):
        stats = policy.stats(arm)
        state = "leader" if arm == leader else "active"
        rows.append(
            ArmRow(
                arm,
                f"instruction {arm}",
                float(stats.mean),
                float(stats.lower),
                float(stats.upper),
                int(stats.count),
                0,
                N,
                state,
                "initial",
            )
        )
    return tuple(rows)


def test_the_real_lucb_leader_can_have_the_lower_mean() -> None:
    rows = early_lucb_rows()
    leader = next(row for row in rows if row.state == "leader")
    other = next(row for row in rows if row.state != "leader")
    assert leader.arm == 0 and leader.mean < other.mean and leader.lower > other.lower


def test_the_board_explains_a_leader_below_another_mean() -> None:
    snapshot = make_snapshot(arms=early_lucb_rows(), winner=0)
    text = render_screen(snapshot, 120, 30)
    note = line_of(text, "★ leader =")
    assert "★ leader = highest lower bound, not highest mean (#1: mean 1.000" in note
    assert "after 4 pulls" in note
    narrow = render_screen(snapshot, 80, 24)
    assert len(narrow.rstrip("\n").split("\n")) == 24  # the note takes a board row, not more
    assert "★ leader = highest lower bound, not highest mean" in narrow
    assert "(highest lower bound, not highest mean)" in plain_line(snapshot)


def test_no_legend_when_the_leader_has_the_highest_mean() -> None:
    snapshot = make_snapshot()  # the leader #1 has the best mean of the rows in play
    assert leader_note(snapshot) is None
    assert "★ leader =" not in render_screen(snapshot, 120, 40)
    assert "not highest mean" not in plain_line(snapshot)


def test_a_dropped_row_or_one_not_pulled_does_not_count() -> None:
    base = make_snapshot()
    dropped = replace(base.arms[5], mean=0.99)
    unpulled = replace(base.arms[0], mean=0.95, pulls=0)
    rows = (unpulled, *base.arms[1:5], dropped)
    assert leader_note(replace(base, arms=rows)) is None


@pytest.mark.parametrize(
    ("policy", "rule"),
    [
        # halving's pick: the best mean of its highest rung, neither best mean nor lower bound
        ("halving", "the halving policy's pick"),
        # paired compares on the examples the candidates share, whatever the lower bounds
        ("paired", "best mean on the examples they share"),
    ],
)
def test_a_leader_by_another_rule_is_named_by_it(policy: str, rule: str) -> None:
    base = make_snapshot(policy=policy)
    rows = tuple(
        replace(row, mean=0.95, lower=0.90, pulls=40) if row.arm == 3 else row for row in base.arms
    )
    note = leader_note(replace(base, arms=rows))
    assert note is not None
    assert note.startswith(f"★ leader = {rule}, not highest mean (#3: mean 0.950")
