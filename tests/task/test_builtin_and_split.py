from __future__ import annotations

import pytest

from engine.errors import ConfigError, DatasetError
from engine.task import (
    Example,
    Task,
    builtin_task,
    builtin_task_names,
    load_task,
    score,
    split_task,
)
from engine.task.builtin import antonym_pairs, number_to_words, plural


def test_builtin_tasks_are_complete_and_answerable_by_their_metric() -> None:
    names = builtin_task_names()
    assert len(names) >= 7
    assert {"first_letter", "sum", "difference", "letters_list", "num_to_words"} <= set(names)
    assert {"larger_number", "reverse_word", "antonyms", "singular_to_plural"} <= set(names)
    for name in names:
        task = builtin_task(name)
        assert 300 <= len(task.examples) <= 600, (name, len(task.examples))
        assert task.human_instruction and task.description, name
        assert len({e.input for e in task.examples}) == len(task.examples)  # distinct inputs
        assert len({e.key for e in task.examples}) == len(task.examples)
        for example in task.examples:
            assert score(task.metric, example.outputs[0], example) == 1.0, (name, example)
            assert score(task.metric, "", example) == 0.0, (name, example)


@pytest.mark.parametrize("name", builtin_task_names())
def test_builtins_are_deterministic_per_seed(name: str) -> None:
    assert builtin_task(name, seed=3) == builtin_task(name, seed=3)
    assert load_task(name, seed=3) == builtin_task(name, seed=3)
    assert builtin_task(name, seed=3).examples != builtin_task(name, seed=4).examples


def test_builtin_answers_are_right() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(7875) == "seven thousand eight hundred seventy five"
    assert number_to_words(110) == "one hundred ten"
    assert number_to_words(40_012) == "forty thousand twelve"
    assert plural("city") == "cities" and plural("box") == "boxes" and plural("child") == "children"
    assert plural("day") == "days" and plural("dish") == "dishes"
    for example in builtin_task("sum").examples:
        a, b = map(int, example.input.split())
        assert example.outputs == (str(a + b),)
    for example in builtin_task("difference").examples:
        a, b = map(int, example.input.split())
        assert example.outputs == (str(a - b),) and a >= b
    for example in builtin_task("larger_number").examples:
        a, b = map(int, example.input.split(", "))
        assert example.outputs == (str(max(a, b)),) and a != b
    for example in builtin_task("letters_list").examples:
        assert example.outputs == (" ".join(example.input),)
    for example in builtin_task("reverse_word").examples:
        assert example.outputs == (example.input[::-1],)


def test_antonyms_go_both_ways_and_every_word_has_one_answer() -> None:
    pairs = antonym_pairs()
    words = [w for pair in pairs for w in pair]
    assert len(words) == len(set(words))
    answers = {e.input: e.outputs for e in builtin_task("antonyms").examples}
    assert answers["hot"] == ("cold",) and answers["cold"] == ("hot",)
    assert len(answers) == 2 * len(pairs)


def test_unknown_builtin_lists_the_names() -> None:
    with pytest.raises(
        DatasetError,
        match=r"'no_such_task' is neither a built-in task nor an existing task file; built-in tasks: first_letter",
    ):
        load_task("no_such_task")
    with pytest.raises(DatasetError, match=r"'missing/x.jsonl' is neither.*sum"):
        load_task("missing/x.jsonl")


def _keys(pool: tuple[Example, ...]) -> set[str]:
    return {e.key for e in pool}


def test_split_is_disjoint_deterministic_and_sized() -> None:
    task = load_task("sum")
    splits = split_task(task, seed=7, demo_size=20, scoring_size=200, test_size=100)
    assert (len(splits.demo), len(splits.scoring), len(splits.test)) == (20, 200, 100)
    demo, scoring, test = _keys(splits.demo), _keys(splits.scoring), _keys(splits.test)
    assert not (demo & scoring) and not (demo & test) and not (scoring & test)
    assert split_task(task, seed=7, demo_size=20) == split_task(task, seed=7, demo_size=20)
    assert split_task(task, seed=7).scoring != split_task(task, seed=8).scoring
    defaults = split_task(task, seed=0)
    assert (len(defaults.demo), len(defaults.scoring), len(defaults.test)) == (50, 200, 100)


def test_split_of_a_small_task_keeps_five_demos_and_shrinks_scoring() -> None:
    task = builtin_task("sum", size=40)
    splits = split_task(task, seed=0)
    assert len(splits.test) == 10 and len(splits.demo) == 7
    assert len(splits.scoring) == len(task.examples) - 17
    tiny = Task("tiny", tuple(Example(str(i), (str(i),), key=str(i)) for i in range(3)))
    splits = split_task(tiny, seed=1)
    assert [len(p) for p in (splits.demo, splits.scoring, splits.test)] == [1, 1, 1]
    with pytest.raises(ConfigError, match=r"'tiny' has 2 examples"):
        split_task(Task("tiny", tiny.examples[:2]))


def test_own_test_file_is_the_test_pool() -> None:
    examples = tuple(Example(f"x{i}", ("y",), key=f"induce {i}") for i in range(30))
    own = tuple(Example(f"t{i}", ("y",), key=f"execute {i}") for i in range(25))
    task = Task("t", examples, test_examples=own)
    splits = split_task(task, seed=2)
    assert splits.test == own  # the whole file, in its order
    assert len(splits.demo) + len(splits.scoring) == 30  # nothing of the induce pool held out
    sampled = split_task(task, seed=2, test_size=10)
    assert len(sampled.test) == 10 and set(sampled.test) <= set(own)
    assert sampled == split_task(task, seed=2, test_size=10)
    assert sampled.test != split_task(task, seed=3, test_size=10).test


@pytest.mark.parametrize(
    ("sizes", "message"),
    [({"scoring_size": 0}, "scoring_size"), ({"demo_size": -1}, "demo_size"), ({"test_size": 0}, "test_size")],
)  # fmt: skip
def test_split_rejects_bad_sizes(sizes: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_task(builtin_task("sum"), **sizes)
