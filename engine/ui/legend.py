"""The leaderboard's legend: what "★ leader" means where it is not the row with the highest mean.

The leader is the policy's pick (`Policy.recommendation`), not the best mean: LUCB and the shared
rule take the highest lower bound, so early in a study a candidate with a few lucky pulls has a
higher mean and a wider interval than the leader; `paired` takes the best mean adjusted for the
examples each was scored on and shrunk by their number (`engine.search.adjusted`), so a late
candidate that started on easy examples ranks below one that beat it on those; halving takes
the best of its highest rung.
The screen says so under the board only when it applies (docs/ui.md, "The leader").
"""

from __future__ import annotations

from engine.study.snapshot import ArmRow, StudySnapshot

__all__ = ["leader_note", "leader_rule"]


def leader_rule(snapshot: StudySnapshot) -> tuple[str, ArmRow, ArmRow] | None:
    """(how the leader was chosen, the leader, the row of highest mean) when the leader is not
    the row with the highest mean; None otherwise. "Highest lower bound" when no row's lower
    bound is above the leader's, else the policy's pick by a rule of its own."""
    rows = [row for row in snapshot.arms if row.state != "dropped" and row.pulls]
    leader = next((row for row in rows if row.state == "leader"), None)
    if leader is None:
        return None
    higher = [row for row in rows if row.mean > leader.mean]
    if not higher:
        return None
    best = max(higher, key=lambda row: (row.mean, -row.arm))
    if snapshot.policy == "paired":
        return "best mean on the examples they share", leader, best
    if all(leader.lower >= row.lower for row in rows):
        return "highest lower bound", leader, best
    return f"the {snapshot.policy} policy's pick", leader, best


def leader_note(snapshot: StudySnapshot) -> str | None:
    """The leaderboard's legend when the leader is not the row with the highest mean."""
    found = leader_rule(snapshot)
    if found is None:
        return None
    rule, leader, best = found
    return (
        f"★ leader = {rule}, not highest mean (#{best.arm}: mean {best.mean:.3f} but lower "
        f"bound {best.lower:.2f} vs {leader.lower:.2f}, after {best.pulls} pulls)"
    )
