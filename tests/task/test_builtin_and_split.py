from __future__ import annotations

import pytest

from engine.errors import ConfigError, DatasetError
from engine.task import builtin_task, builtin_task_names, load_task, score, split_task
from engine.task.builtin import number_to_words, plural


def test_at_least_six_builtin_tasks_each_answerable_by_its_metric() -> None:
    names = builtin_task_names()
    assert len(names) >= 6
    for name in names:
        task = builtin_task(name)
        assert len(task.examples) >= 300, name
        assert task.human_instruction and task.description
        assert len({e.input for e in task.examples}) == len(task.examples)  # distinct inputs
        for example in task.examples[:20]:
            assert score(task.metric, example.outputs[0], example) == 1.0


def test_builtins_are_deterministic_per_seed() -> None:
    assert builtin_task("sum", seed=3) == builtin_task("sum", seed=3)
    assert builtin_task("sum", seed=3).examples != builtin_task("sum", seed=4).examples


def test_builtin_answers() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(7875) == "seven thousand eight hundred seventy five"
    assert number_to_words(110) == "one hundred ten"
    assert plural("city") == "cities" and plural("box") == "boxes" and plural("child") == "children"
    for example in builtin_task("sum").examples[:50]:
        a, b = map(int, example.input.split())
        assert example.outputs == (str(a + b),)


def test_unknown_builtin_lists_the_names() -> None:
    with pytest.raises(DatasetError, match="first_letter"):
        load_task("no_such_task")


def test_split_is_disjoint_deterministic_and_sized() -> None:
    task = load_task("sum")
    splits = split_task(task, seed=7, demo_size=20, scoring_size=200, test_size=100)
    assert (len(splits.demo), len(splits.scoring), len(splits.test)) == (20, 200, 100)
    inputs = [{e.input for e in pool} for pool in (splits.demo, splits.scoring, splits.test)]
    assert (
        not (inputs[0] & inputs[1]) and not (inputs[0] & inputs[2]) and not (inputs[1] & inputs[2])
    )
    assert split_task(task, seed=7, demo_size=20) == split_task(task, seed=7, demo_size=20)
    assert split_task(task, seed=7).scoring != split_task(task, seed=8).scoring


def test_split_shrinks_scoring_pool_of_small_task_and_rejects_bad_sizes() -> None:
    task = builtin_task("sum", size=40)
    splits = split_task(task, seed=0)
    assert len(splits.scoring) >= 1 and len(splits.demo) >= 1 and len(splits.test) >= 1
    with pytest.raises(ConfigError, match="scoring_size"):
        split_task(task, scoring_size=0)
