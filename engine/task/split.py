"""Deterministic, seeded splits of a task into its three pools.

- demo pool: the demonstrations the proposal model sees;
- scoring pool: the n examples the scheduler scores candidates on (its finite population);
- test pool: held out for the final evaluation of the winner and the human instruction.

A task that ships its own test file (instruction induction's `execute`) uses it as the test pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import ConfigError
from engine.task.types import Example, Task

__all__ = ["Splits", "split_task"]


@dataclass(frozen=True, slots=True)
class Splits:
    """The three disjoint pools of a task: demos for proposals, the scheduler's scoring pool and
    the held-out test pool."""

    demo: tuple[Example, ...]
    scoring: tuple[Example, ...]
    test: tuple[Example, ...]


def split_task(
    task: Task,
    *,
    seed: int = 0,
    demo_size: int = 50,
    scoring_size: int = 200,
    test_size: int = 100,
) -> Splits:
    """Split `task` into disjoint pools; the same (task, seed, sizes) always gives the same pools.

    The examples are shuffled with `seed`, then the test pool (unless the task has its own test
    file), the demo pool and the scoring pool are taken in turn. A small task keeps a quarter for
    the test pool and a quarter (at least 5, for the proposal's demos) for the demo pool, and
    the scoring pool shrinks first. A task's own test file is the test pool whole, or a seeded
    sample of `test_size` of it when it is larger.
    """
    for name, size in (("demo_size", demo_size), ("scoring_size", scoring_size)):
        if size < 1:
            raise ConfigError(f"{name} must be at least 1, not {size}")
    if test_size < 1:
        raise ConfigError(f"test_size must be at least 1, not {test_size}")
    rng = np.random.default_rng(seed)
    examples = task.examples
    order = rng.permutation(len(examples))  # positions: only the examples taken are read

    def taken(positions: np.ndarray) -> tuple[Example, ...]:
        return tuple(examples[int(i)] for i in positions)

    own_test = task.test_examples
    needed = 2 if own_test is not None else 3
    if len(order) < needed:
        raise ConfigError(
            f"task {task.name!r} has {len(order)} examples; it needs at least {needed} "
            "to split into demo, scoring and test pools"
        )
    test: tuple[Example, ...]
    if own_test is not None:
        if not own_test:
            raise ConfigError(f"task {task.name!r}: its own test file has no examples")
        if len(own_test) > test_size:
            picked = sorted(rng.choice(len(own_test), size=test_size, replace=False).tolist())
            test = tuple(own_test[i] for i in picked)
        else:
            test = own_test
    else:
        take = min(test_size, max(1, len(order) // 4))
        test, order = taken(order[:take]), order[take:]
    demo_take = min(demo_size, len(order) - 1, max(5, len(order) // 4))
    demo, order = taken(order[:demo_take]), order[demo_take:]
    return Splits(demo=demo, scoring=taken(order[:scoring_size]), test=test)
