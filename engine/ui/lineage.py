"""Which candidate came from which, by which kind: the lineage view (docs/ui.md, "Lineage").

A candidate's kind (its `origin`: initial, resample, reflect, merge, human, user) and parents
are shown three ways, all from the same functions: a label in the leaderboard's origin column
(``reflect ←#13``, ``merge ←#13+#27``), a candidate's line of descent (``#31 reflect ← #13
resample ← #2 initial``, following the first parent of a merge), and the family trees of a
study read back (`families`: every candidate that has a parent or a child, under its
first parent). Pure functions of (arm -> kind, parents) maps, so the live screen, `show` and
the HTML page say the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["KindRow", "Node", "descent", "families", "kind_rows", "origin_label"]

_SHORT = {"resample": "res", "reflect": "refl", "merge": "mrg"}  # beside their parents
# earlier journals and services named two kinds otherwise
_OLD = {"proposal": "initial", "variant": "resample"}


def _kind(origin: str) -> str:
    return _OLD.get(origin, origin)


def origin_label(origin: str, parents: Sequence[int], *, short: bool = False) -> str:
    """The origin column: the kind, and where it came from (``reflect ←#13``)."""
    kind = _kind(origin)
    if not parents:
        return kind
    name = _SHORT.get(kind, kind) if short else kind
    sources = "+".join(f"#{parent}" for parent in parents)
    return f"{name}←{sources}" if short else f"{name} ←{sources}"


Lineage = Mapping[int, tuple[str, Sequence[int]]]  # arm -> (kind, parents)


def descent(arm: int, lineage: Lineage, *, limit: int = 6) -> str:
    """`arm`'s line of descent, newest first: ``#31 reflect ← #13 resample ← #2 initial`` (a
    merge names its second parent and follows the first); `limit` candidates at most."""
    parts: list[str] = []
    seen: set[int] = set()
    current: int | None = arm
    while current is not None and current in lineage and current not in seen:
        if len(parts) == limit:
            parts.append("…")
            break
        seen.add(current)
        origin, parents = lineage[current]
        kind = _kind(origin)
        extra = f" (with #{', #'.join(map(str, parents[1:]))})" if len(parents) > 1 else ""
        parts.append(f"#{current} {kind}{extra}")
        current = parents[0] if parents else None
    return " ← ".join(parts)


@dataclass(frozen=True, slots=True)
class Node:
    """A candidate in a family tree: its number, kind, other parents (a merge's second) and
    the candidates written from it (under their first parent)."""

    arm: int
    kind: str
    also_from: tuple[int, ...]
    children: tuple[Node, ...]


def families(lineage: Lineage, *, order: Sequence[int] = ()) -> list[Node]:
    """The family trees: every candidate with a parent or a child, under its first parent,
    the roots (and each one's children) in `order` (default: by number)."""
    children: dict[int, list[int]] = {}
    for arm, (_, parents) in lineage.items():
        if parents and parents[0] in lineage:
            children.setdefault(parents[0], []).append(arm)
    rank = {arm: place for place, arm in enumerate(order)}

    def key(arm: int) -> tuple[int, int]:
        return (rank.get(arm, len(rank)), arm)

    def node(arm: int) -> Node:
        origin, parents = lineage[arm]
        kids = tuple(node(kid) for kid in sorted(children.get(arm, ()), key=key))
        return Node(arm, _kind(origin), tuple(parents[1:]), kids)

    roots = [
        arm
        for arm, (_, parents) in lineage.items()
        if arm in children and not (parents and parents[0] in lineage)
    ]
    return [node(arm) for arm in sorted(roots, key=key)]


@dataclass(frozen=True, slots=True)
class KindRow:
    """The proposal calls of one kind and the candidates they added (`kept`)."""

    kind: str
    calls: int
    tokens: int
    generated: int
    kept: int
    rejected: int
    reasons: str  # "about the task 2, no instruction 1"


def kind_rows(proposals: Mapping[str, Mapping[str, Any]], origins: Sequence[str]) -> list[KindRow]:
    """One row per kind of proposal call (`proposals`: the study's tallies by kind), in the
    order of `engine.study.events.ORIGINS`, with the candidates of that kind kept."""
    order = ["initial", "resample", "reflect", "merge"]
    kinds = [kind for kind in order if kind in proposals]
    kinds += sorted(kind for kind in proposals if kind not in order)
    rows = []
    for kind in kinds:
        tally = proposals[kind]
        reasons = tally.get("reasons") or {}
        ranked = sorted(dict(reasons).items(), key=lambda item: (-int(item[1]), item[0]))
        rows.append(
            KindRow(
                kind,
                int(tally.get("calls", 0)),
                int(tally.get("tokens", 0)),
                int(tally.get("generated", 0)),
                sum(_kind(origin) == kind for origin in origins),
                int(tally.get("rejected", 0)),
                ", ".join(f"{why.replace('_', ' ')} {n}" for why, n in ranked),
            )
        )
    return rows
