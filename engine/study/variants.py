"""What a variant round asks for: its parents, the kind of call each gets, what a reflection or a
merge is shown (docs/design.md, "Proposals").

Parents are the leaders by mean (`parents = "leaders"`, iterative APE), or the best leader and
then candidates sampled from the per-example Pareto front by the examples they win
(`parents = "pareto"`, GEPA; `engine.propose.parents`), the leaders filling the places the front
cannot. Each parent gets `variants_per_leader` variants: rewordings (`resample`), revisions
written after reading its answers (`reflect`), or both, its variants split between the two (a
reflection takes the odd one; with one variant a parent, the parents alternate, the best
reflected). A parent with no wrong answer kept has nothing to reflect on and is reworded. With
`merge`, the round also merges two candidates of the front that win on different examples.

A reflection is shown up to `reflection_errors` of the parent's wrong answers and half as many
right ones, drawn from those the state keeps (`engine.study.answers`), each with its example's
input and expected output from the scoring pool. The draws are seeded by the round and the
parent, so a resumed study asks what the first run would have.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from engine.propose import Evidence, Parent, front_wins, merge_pair, sample_parents
from engine.study.answers import KeptAnswer
from engine.study.settings import ProposalPlan
from engine.study.state import StudyState
from engine.task.types import Example

__all__ = ["VariantCall", "leaders", "round_calls"]

#: characters of an input, an expected output or an answer a reflection is shown
EVIDENCE_CHARS = 500
CallKind = Literal["resample", "reflect", "merge"]


@dataclass(frozen=True, slots=True)
class VariantCall:
    """One proposal call of a round: its kind, its parents (two for a merge), the variants it
    asks for, and what it is shown (a merge: what only the first, and only the second, gets
    right)."""

    kind: CallKind
    parents: tuple[Parent, ...]
    n: int
    evidence: tuple[Evidence, ...] = ()
    second_evidence: tuple[Evidence, ...] = ()


def leaders(state: StudyState, count: int) -> list[int]:
    """The `count` best candidates still in play (pulled, not eliminated or dropped), by what
    the policy ranks its leader by (`ArmStats.estimate`: for `paired`, the mean judged on the
    examples the candidates share; a mean from a few lucky pulls is not a leader)."""
    ranked = []
    for arm in state.arms:
        if arm.index in state.dropped:
            continue
        stats = state.policy.stats(arm.index)
        if stats.count == 0 or stats.state in ("eliminated", "dropped"):
            continue
        ranked.append((stats.estimate, stats.count, -arm.index, arm.index))
    ranked.sort(reverse=True)
    return [item[3] for item in ranked[:count]]


def _front(state: StudyState) -> dict[int, int]:
    """The Pareto front's candidates and their wins (dropped ones never take part)."""
    means = [float(state.policy.stats(arm.index).mean) for arm in state.arms]
    eligible = [arm.index not in state.dropped for arm in state.arms]
    return front_wins(state.book.rewards(), means, eligible)


def _parents(state: StudyState, plan: ProposalPlan, rng: random.Random) -> list[int]:
    best = leaders(state, plan.variant_leaders)
    if plan.parents == "leaders" or not best:
        return best
    chosen = best[:1]
    chosen += sample_parents(_front(state), plan.variant_leaders - 1, rng, exclude=chosen)
    chosen += [arm for arm in best if arm not in chosen][: plan.variant_leaders - len(chosen)]
    return chosen


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + "…"


def _shown(answer: KeptAnswer, pool: Sequence[Example], right: bool) -> Evidence:
    example = pool[answer.example]
    expected = example.outputs[0] if example.outputs else ""
    return Evidence(
        _clip(example.input), _clip(expected), _clip(answer.answer), right, example.fields
    )


def _example(example: Example) -> Evidence:
    """An example as a merge shows it: the input and the expected output."""
    expected = example.outputs[0] if example.outputs else ""
    return Evidence(_clip(example.input), _clip(expected), "", right=True, fields=example.fields)


def evidence_of(
    state: StudyState, pool: Sequence[Example], arm: int, errors: int, rng: random.Random
) -> tuple[Evidence, ...]:
    """What a reflection on `arm` is shown: up to `errors` wrong answers, then up to half as
    many right ones, drawn from those kept; empty when it has no wrong answer kept."""
    kept = state.book.kept(arm)
    if not kept.wrong:
        return ()
    wrong = rng.sample(kept.wrong, min(errors, len(kept.wrong)))
    right = rng.sample(kept.right, min(math.ceil(errors / 2), len(kept.right)))
    return tuple(_shown(a, pool, False) for a in wrong) + tuple(
        _shown(a, pool, True) for a in right
    )


def _split(plan: ProposalPlan, place: int) -> list[tuple[CallKind, int]]:
    """The kinds of call one parent gets, with their variants (`place`: its rank in the round)."""
    n = plan.variants_per_leader
    if plan.variants == "resample":
        return [("resample", n)]
    if plan.variants == "reflect":
        return [("reflect", n)]
    if n == 1:
        return [("reflect", 1)] if place % 2 == 0 else [("resample", 1)]
    return [("reflect", math.ceil(n / 2)), ("resample", n // 2)]


def _merge_call(
    state: StudyState, pool: Sequence[Example], plan: ProposalPlan, rng: random.Random
) -> VariantCall | None:
    pair = merge_pair(state.book.rewards(), _front(state), rng)
    if pair is None:
        return None

    def shown(examples: tuple[int, ...]) -> tuple[Evidence, ...]:
        chosen = rng.sample(examples, min(plan.reflection_errors, len(examples)))
        return tuple(_example(pool[e]) for e in chosen)

    first, second = state.arms[pair.first], state.arms[pair.second]
    return VariantCall(
        "merge",
        (Parent(first.index, first.instruction), Parent(second.index, second.instruction)),
        plan.variants_per_leader,
        shown(pair.first_only),
        shown(pair.second_only),
    )


def round_calls(
    state: StudyState, pool: Sequence[Example], plan: ProposalPlan, number: int
) -> list[VariantCall]:
    """The proposal calls of variant round `number`, best parent first, the merge last."""
    calls: list[VariantCall] = []
    for place, arm in enumerate(_parents(state, plan, random.Random(f"parents {number}"))):
        parent = Parent(arm, state.arms[arm].instruction)
        kinds = _split(plan, place)
        evidence: tuple[Evidence, ...] = ()
        if any(kind == "reflect" for kind, _ in kinds):
            rng = random.Random(f"reflect {number} {arm}")
            evidence = evidence_of(state, pool, arm, plan.reflection_errors, rng)
            if not evidence:  # nothing wrong to learn from: reworded instead
                kinds = [("resample", plan.variants_per_leader)]
        for kind, n in kinds:
            shown = evidence if kind == "reflect" else ()
            calls.append(VariantCall(kind, (parent,), n, shown))
    if plan.merge:
        merged = _merge_call(state, pool, plan, random.Random(f"merge {number}"))
        if merged is not None:
            calls.append(merged)
    return calls
