"""The demo search: which demos a prompt shows is searched with the instruction (docs/design.md,
"Proposals"; DSPy's MIPROv2 searches instructions and demo sets jointly, Opsahl-Ong et al.
2024).

With `demo_search` on, each variant round also pairs the leader's instruction with demo sets
of its own, drawn from the demo pool (never the scoring or test pools) as `demo_sets`
candidates: a random set, a diverse one (each next demo the one least like those taken, by
the words of its input and output), and one of examples the leader answers right (it is run
on a few demo-pool examples first: DSPy's bootstrapped demos; when fewer than a set are right,
the others tried fill it). Each such candidate (origin
``demos``, its parent the leader) is raced by the same scheduler as every other, and reported
with its demos. A set holds as many demos as the study's scoring prompt shows (`scoring_demos`);
the draws are seeded by the round, so a resumed study asks what the first run would have.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from engine.task.types import Example

__all__ = ["STRATEGIES", "Bootstrap", "DemoPlan", "diverse_set", "random_set", "round_plan"]

Strategy = Literal["random", "diverse", "right"]
#: The ways a demo set is drawn, in the order a round's sets take them.
STRATEGIES: tuple[Strategy, ...] = ("random", "diverse", "right")
_WORD = re.compile(r"\w+")


def random_set(size: int, k: int, rng: random.Random) -> tuple[int, ...]:
    """`k` places of a pool of `size`, drawn without replacement."""
    return tuple(rng.sample(range(size), min(k, size)))


def _words(example: Example) -> frozenset[str]:
    text = f"{example.input} {example.outputs[0] if example.outputs else ''}"
    return frozenset(word.lower() for word in _WORD.findall(text))


def _distance(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return 1.0 - len(a & b) / union if union else 0.0


def diverse_set(pool: Sequence[Example], k: int, rng: random.Random) -> tuple[int, ...]:
    """`k` places of `pool` spread over it: a random first one, then each time the example
    farthest (token-set Jaccard) from those taken (ties to the earlier one)."""
    if not pool or k <= 0:
        return ()
    words = [_words(example) for example in pool]
    taken = [rng.randrange(len(pool))]
    nearest = [_distance(words[i], words[taken[0]]) for i in range(len(pool))]
    while len(taken) < min(k, len(pool)):
        best = max((i for i in range(len(pool)) if i not in taken), key=lambda i: nearest[i])
        taken.append(best)
        nearest = [min(nearest[i], _distance(words[i], words[best])) for i in range(len(pool))]
    return tuple(taken)


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """The demo-pool examples the leader is run on to find those it answers right."""

    examples: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """What a round's demo search asks for: the sets drawn without a call, and, when a set of
    right answers is wanted, the examples to run the leader on first."""

    parent: int
    sets: list[tuple[Strategy, tuple[int, ...]]] = field(default_factory=list)
    bootstrap: Bootstrap | None = None


def round_plan(parent: int, pool: Sequence[Example], k: int, count: int, number: int) -> DemoPlan:
    """The demo sets round `number` proposes for `parent`: `count` of them, the strategies in
    turn, each of `k` demos of `pool` (seeded by the round)."""
    rng = random.Random(f"demos {number} {parent}")
    plan = DemoPlan(parent)
    wants_right = False
    for place in range(count):
        strategy = STRATEGIES[place % len(STRATEGIES)]
        if strategy == "random":
            plan.sets.append((strategy, random_set(len(pool), k, rng)))
        elif strategy == "diverse":
            plan.sets.append((strategy, diverse_set(pool, k, rng)))
        else:
            wants_right = True
    if not wants_right or not pool:
        return plan
    tried = random_set(len(pool), 2 * k, rng)  # twice the set: most leaders get half right
    return DemoPlan(parent, plan.sets, Bootstrap(tried))


def right_set(rewards: dict[int, float], k: int) -> tuple[int, ...]:
    """The set of examples the leader answered right (`rewards`: by place in the demo pool,
    in the order tried): the best rewarded above 0 first, then -- when fewer than `k` were
    right -- the others tried, so that the set is as large as the others; none when none was
    right."""
    ranked = sorted(
        (-reward, order, index) for order, (index, reward) in enumerate(rewards.items())
    )
    if not ranked or ranked[0][0] >= 0:
        return ()
    return tuple(index for _, _, index in ranked)[:k]
