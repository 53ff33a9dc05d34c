from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.task import Example, normalise, score


def test_normalise_drops_case_punctuation_articles_and_spaces() -> None:
    assert normalise("  The Quick, brown fox!  ") == "quick brown fox"
    assert normalise("An apple a day") == "apple day"


@pytest.mark.parametrize(
    ("prediction", "outputs", "expected"),
    [
        ("Paris.", ("paris",), 1.0),
        ("the Paris", ("Paris",), 1.0),
        ("Lyon", ("Paris", "Lyon"), 1.0),  # any accepted output counts
        ("Paris France", ("Paris",), 0.0),
    ],
)
def test_exact_match(prediction: str, outputs: tuple[str, ...], expected: float) -> None:
    assert score("exact_match", prediction, Example("x", outputs)) == expected


def test_contains_needs_whole_words() -> None:
    example = Example("x", ("rest",))
    assert score("contains", "I think: rest.", example) == 1.0
    assert score("contains", "arrested", example) == 0.0


def test_f1_gives_partial_credit() -> None:
    example = Example("x", ("involve oscillations",))
    assert score("f1", "involve oscillations", example) == 1.0
    assert score("f1", "they involve waves", example) == pytest.approx(0.4)
    assert score("f1", "nothing shared", example) == 0.0
    # the best of several accepted outputs
    two = Example("x", ("red fruit", "involve oscillations"))
    assert score("f1", "oscillations", two) == pytest.approx(2 / 3)


def test_exact_set_ignores_order_and_separators() -> None:
    example = Example("x", ("chicken, spider, tortoise",))
    assert score("exact_set", "spider, tortoise and chicken", example) == 1.0
    assert score("exact_set", "spider, tortoise", example) == 0.0
    assert score("exact_set", "spider, tortoise, chicken, taxi", example) == 0.0


def test_multiple_choice_picks_a_choice() -> None:
    example = Example("x", ("True",), choices=("True", "False"))
    assert score("multiple_choice", "true", example) == 1.0
    assert score("multiple_choice", "True, because the steps cancel", example) == 1.0
    assert score("multiple_choice", "False", example) == 0.0
    assert score("multiple_choice", "maybe", example) == 0.0


def test_every_reward_is_in_unit_interval() -> None:
    example = Example("x", ("a b c",), choices=("a b c", "d"))
    for metric in ("exact_match", "contains", "f1", "exact_set", "multiple_choice"):
        for prediction in ("", "a", "b c", "a b c d e", "d"):
            assert 0.0 <= score(metric, prediction, example) <= 1.0


def test_unknown_metric_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="exact_match"):
        score("bleu", "x", Example("x", ("y",)))
