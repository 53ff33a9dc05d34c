from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.task import Example, metric_function, normalise, score
from engine.task.metrics import chosen, read_answer


def test_normalise_drops_case_punctuation_articles_and_spaces() -> None:
    assert normalise("  The Quick, brown fox!  ") == "quick brown fox"
    assert normalise("An apple a day") == "apple day"
    assert normalise("Forty-two\n\tapples.") == "forty two apples"
    assert normalise("theatre anthem") == "theatre anthem"  # articles only as whole words


def test_an_answer_that_is_an_article_is_not_matched_by_nothing() -> None:
    # first_letter of "apple" is "a": an empty or unrelated answer must not match it
    example = Example("apple", ("a",))
    assert normalise("a") == "a" and normalise("The") == "the"
    assert score("exact_match", "A.", example) == 1.0
    assert score("exact_match", "", example) == 0.0
    assert score("exact_match", "the", example) == 0.0
    assert score("exact_set", "", example) == 0.0


@pytest.mark.parametrize(
    ("prediction", "outputs", "expected"),
    [
        ("Paris.", ("paris",), 1.0),
        ("the Paris", ("Paris",), 1.0),
        ("Lyon", ("Paris", "Lyon"), 1.0),  # any accepted output counts
        ("Paris France", ("Paris",), 0.0),
        ("  THE   Eiffel-Tower!! ", ("eiffel tower",), 1.0),
        ("seventy five", ("seventy-five",), 1.0),
        ("", ("Paris",), 0.0),
    ],
)
def test_exact_match(prediction: str, outputs: tuple[str, ...], expected: float) -> None:
    assert score("exact_match", prediction, Example("x", outputs)) == expected


def test_contains_needs_whole_words() -> None:
    example = Example("x", ("rest",))
    assert score("contains", "I think: rest.", example) == 1.0
    assert score("contains", "arrested", example) == 0.0
    assert score("contains", "Rest, relax", Example("x", ("sleep", "relax"))) == 1.0
    assert score("contains", "anything", Example("x", ("...",))) == 0.0  # nothing to contain


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
    assert score("exact_set", "Spider; the tortoise;\nchicken.", example) == 1.0
    assert score("exact_set", "spider, spider, tortoise, chicken", example) == 1.0  # a set
    assert score("exact_set", "spider, tortoise", example) == 0.0
    assert score("exact_set", "spider, tortoise, chicken, taxi", example) == 0.0
    two = Example("x", ("a, b", "c"))
    assert score("exact_set", "c", two) == 1.0 and score("exact_set", "b and a", two) == 1.0


def test_multiple_choice_picks_a_choice() -> None:
    example = Example("x", ("True",), choices=("True", "False"))
    assert score("multiple_choice", "true", example) == 1.0
    assert score("multiple_choice", "True, because the steps cancel", example) == 1.0
    assert score("multiple_choice", "I would say it is true.", example) == 1.0  # mentioned once
    assert score("multiple_choice", "False", example) == 0.0
    assert score("multiple_choice", "maybe", example) == 0.0
    assert score("multiple_choice", "true or false", example) == 0.0  # ambiguous


def test_multiple_choice_keeps_letter_choices_that_look_like_articles() -> None:
    example = Example("x", ("(b)",), choices=("(a)", "(b)"))
    assert chosen("(a)", example.choices or ()) == "(a)"
    assert score("multiple_choice", "(b)", example) == 1.0
    assert score("multiple_choice", "B", example) == 1.0
    assert score("multiple_choice", "(a)", example) == 0.0
    assert score("multiple_choice", "(A) Protein supplements are", example) == 0.0
    assert score("multiple_choice", "The answer is (b).", example) == 1.0


def test_multiple_choice_prefers_the_longest_choice_a_prediction_starts_with() -> None:
    example = Example("x", ("not entailment",), choices=("entailment", "not entailment"))
    assert score("multiple_choice", "Not entailment, since ...", example) == 1.0
    assert score("multiple_choice", "entailment", example) == 0.0
    assert score("multiple_choice", "I think it is not entailment.", example) == 1.0


def test_multiple_choice_with_several_correct_choices_and_without_choices() -> None:
    example = Example("x", ("yes", "correct"), choices=("yes", "correct", "no"))
    assert score("multiple_choice", "Correct.", example) == 1.0
    assert score("multiple_choice", "yes", Example("x", ("Yes",))) == 1.0  # exact match fallback


def test_every_reward_is_in_unit_interval() -> None:
    example = Example("x", ("a b c",), choices=("a b c", "d"))
    for metric in ("exact_match", "contains", "f1", "exact_set", "multiple_choice"):
        for prediction in ("", "a", "b c", "a b c d e", "d"):
            assert 0.0 <= score(metric, prediction, example) <= 1.0


def test_metric_function_by_name_and_unknown_metric_names_the_choices() -> None:
    example = Example("x", ("red apple",))
    assert metric_function("f1")("apple", example) == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match=r"unknown metric 'bleu'; choose one of: exact_match"):
        metric_function("bleu")
    with pytest.raises(ConfigError, match="exact_match"):
        score("bleu", "x", Example("x", ("y",)))


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        ("cold", "cold"),
        ("Output: cold", "cold"),
        ('Answer: "cold".', "cold"),
        ("The answer is: cold", "cold"),
        ("**cold**", "cold"),
        ("'cold'.", "cold"),
        ("\n\ncold\nBecause hot is the opposite.", "cold"),
        ("etc..", "etc.."),
        ("", ""),
    ],
)
def test_answers_are_read_the_way_chat_models_write_them(raw: str, read: str) -> None:
    assert read_answer(raw) == read


def test_a_set_answer_keeps_every_line_and_the_reading_feeds_the_metric() -> None:
    assert read_answer("Answer: a\nb\nc", "exact_set") == "a, b, c"
    example = Example("x", ("b, a, c",))
    assert score("exact_set", read_answer("a\nb\nc", "exact_set"), example) == 1.0
    assert score("exact_match", read_answer('Output: "The cold."'), Example("x", ("cold",))) == 1.0
