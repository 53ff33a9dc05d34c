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
    """Split `task` into disjoint pools; a small task shrinks the scoring pool first, never the
    others below one example each. The same (task, seed, sizes) always gives the same pools."""
    for name, size in (("demo_size", demo_size), ("scoring_size", scoring_size)):
        if size < 1:
            raise ConfigError(f"{name} must be at least 1, not {size}")
    if test_size < 0:
        raise ConfigError(f"test_size must be at least 0, not {test_size}")
    rng = np.random.default_rng(seed)
    order = [task.examples[i] for i in rng.permutation(len(task.examples))]
    own_test = task.test_examples is not None
    needed_apart = 2 if own_test else 3
    if len(order) < needed_apart:
        raise ConfigError(
            f"task {task.name!r} has {len(order)} examples; it needs at least {needed_apart} "
            "to split into demo, scoring and test pools"
        )
    test: tuple[Example, ...]
    if own_test:
        assert task.test_examples is not None
        test = task.test_examples[:test_size] if test_size else task.test_examples
    else:
        take = min(test_size, max(1, len(order) // 4))
        test, order = tuple(order[:take]), order[take:]
    demo_take = min(demo_size, max(1, len(order) // 4))
    demo, order = tuple(order[:demo_take]), order[demo_take:]
    return Splits(demo=demo, scoring=tuple(order[:scoring_size]), test=test)
