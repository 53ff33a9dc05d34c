"""The lineage view: origin labels, a candidate's line of descent, the family trees, and the
proposal calls by kind, as the screen, `show` and the HTML page draw them."""

from __future__ import annotations

import io

from rich.console import Console, RenderableType

from engine.ui.lineage import descent, families, kind_rows, origin_label
from engine.ui.render import leaderboard_panel
from tests.ui.snapshots import make_snapshot

LINEAGE = {
    0: ("initial", ()),
    1: ("initial", ()),
    2: ("resample", (0,)),
    3: ("reflect", (2,)),
    4: ("merge", (3, 1)),
    5: ("user", ()),
    6: ("variant", (1,)),  # as a version-2 journal or an older service names it
}


def rendered(renderable: RenderableType, width: int = 120) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=False)
    console.print(renderable)
    return console.export_text()


def test_origin_labels_name_the_kind_and_the_parents() -> None:
    assert origin_label("initial", ()) == "initial"
    assert origin_label("reflect", (13,)) == "reflect ←#13"
    assert origin_label("merge", (13, 27)) == "merge ←#13+#27"
    assert origin_label("reflect", (13,), short=True) == "refl←#13"
    assert origin_label("variant", (1,)) == "resample ←#1"
    assert origin_label("proposal", ()) == "initial"


def test_a_line_of_descent_follows_the_first_parent() -> None:
    assert descent(4, LINEAGE) == "#4 merge (with #1) ← #3 reflect ← #2 resample ← #0 initial"
    assert descent(0, LINEAGE) == "#0 initial"
    assert descent(4, LINEAGE, limit=2) == "#4 merge (with #1) ← #3 reflect ← …"


def test_families_hold_every_candidate_with_a_parent_or_a_child() -> None:
    roots = families(LINEAGE, order=[1, 0])
    assert [root.arm for root in roots] == [1, 0]  # in the order given, candidate 5 left out
    assert [child.arm for child in roots[1].children] == [2]
    merge = roots[1].children[0].children[0].children[0]
    assert (merge.arm, merge.kind, merge.also_from) == (4, "merge", (1,))
    assert roots[0].children[0].kind == "resample"


def test_kind_rows_count_calls_kept_and_reasons() -> None:
    proposals = {
        "reflect": {"calls": 2, "tokens": 900, "generated": 6, "rejected": 2,
                    "reasons": {"no_instruction": 1, "about_the_task": 1}},
        "initial": {"calls": 1, "tokens": 300, "generated": 5, "rejected": 0, "reasons": {}},
    }  # fmt: skip
    rows = kind_rows(proposals, [origin for origin, _ in LINEAGE.values()])
    assert [(r.kind, r.calls, r.kept, r.rejected) for r in rows] == [
        ("initial", 1, 2, 0),
        ("reflect", 2, 1, 2),
    ]
    assert rows[1].reasons == "about the task 1, no instruction 1"


def test_the_screen_shows_the_selected_candidate_s_descent() -> None:
    text = rendered(leaderboard_panel(make_snapshot(), 120, 14, selected=3))
    assert "lineage: #3 resample ← #1 initial" in text
    assert "resample ←#1" in text
    # a candidate without a parent has no line of descent
    assert "lineage:" not in rendered(leaderboard_panel(make_snapshot(), 120, 14, selected=1))
