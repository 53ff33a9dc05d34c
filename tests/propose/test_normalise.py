"""Cleaning proposals into instructions, and exact / near duplicate removal."""

from __future__ import annotations

import pytest

from engine.propose import Deduplicator, clean_proposal, instruction_key, jaccard
from engine.propose import normalise_instruction as normalise
from engine.propose.normalise import judge_proposal


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('  "Write the antonym of the word."  ', "Write the antonym of the word."),
        ("The instruction was: reverse the word.\n\nInput: x", "reverse the word."),
        ("Sure! Here is the instruction: “Write the larger number.”", "Write the larger number."),
        ("Here's the new instruction:\nAdd the two numbers.", "Add the two numbers."),
        ("Instruction: Sort the letters.", "Sort the letters."),
        ("Output: Give the larger number.", "Give the larger number."),
        ("Add the numbers. Input: 3 4 Output: 7", "Add the numbers."),
        ("Add the numbers.\nInput: 3 4\nOutput: 7", "Add the numbers."),
        ("Add the\n   two numbers.\n\nA second paragraph.", "Add the two numbers."),
        ('"Write the word backwards.', "Write the word backwards."),
        ("Input: 5\nOutput: 6", ""),
        ("   ", ""),
    ],
)
def test_normalise_keeps_the_instruction_alone(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_an_input_inside_a_sentence_is_not_cut() -> None:
    text = "Given the input: a word, write its first letter."
    assert normalise(text) == text


def test_imperative_turns_a_forward_continuation_into_an_instruction() -> None:
    assert normalise(" to add the two numbers", imperative=True) == "Add the two numbers"
    assert normalise(" to add the two numbers") == "to add the two numbers"


def test_a_leading_colon_or_dash_of_a_continuation_goes() -> None:
    assert normalise(": add the two numbers.", imperative=True) == "Add the two numbers."
    assert normalise(" - to add them", imperative=True) == "Add them"
    assert normalise("\u2014 reverse the word") == "reverse the word"


def test_the_length_cap_rejects_instead_of_cutting() -> None:
    text = "Write " + "very " * 20 + "carefully."
    assert normalise(text, max_chars=len(text)) == text
    assert normalise(text, max_chars=len(text) - 1) == ""
    assert clean_proposal(text, max_chars=20, imperative=False) == ""


def test_clean_proposal_rejects_what_is_not_an_instruction() -> None:
    assert clean_proposal("Output: 6", max_chars=400, imperative=False) == ""
    assert clean_proposal("OK", max_chars=400, imperative=False) == ""
    assert clean_proposal("Add them.", max_chars=400, imperative=False) == "Add them."


def test_the_exact_key_ignores_case_punctuation_and_a_leading_to() -> None:
    assert instruction_key("To add the numbers!") == instruction_key("add  the Numbers")
    assert instruction_key("Add the numbers") != instruction_key("Add the number")


def test_jaccard() -> None:
    assert jaccard(frozenset("ab"), frozenset("ab")) == 1.0
    assert jaccard(frozenset("ab"), frozenset("bc")) == pytest.approx(1 / 3)
    assert jaccard(frozenset(), frozenset()) == 1.0


def test_deduplicator_drops_exact_and_near_copies_at_the_threshold() -> None:
    seen = Deduplicator(0.75, known=["Write the larger of the two numbers."])
    assert not seen.check("write the larger of the two numbers").new  # exact, case aside
    near = seen.check("Write the larger of both two numbers.")  # 6 of 7 tokens shared: 0.86
    assert not near.new and near.near == "Write the larger of the two numbers."
    assert seen.check("Numbers: the two of larger the write.").new is False  # same token set
    assert seen.check("Write the smaller number.").new  # 2 of 8: 0.25, new
    assert not seen.check("Write the smaller number!").new  # and now remembered
    assert len(seen) == 2


def test_deduplicator_threshold_one_keeps_all_but_same_token_sets() -> None:
    seen = Deduplicator(1.0)
    assert seen.check("Add the two numbers.").new
    assert seen.check("Add the two numbers together.").new
    assert not seen.check("the two numbers add").new
    with pytest.raises(ValueError, match="similarity"):
        Deduplicator(0.0)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("To determine the instruction, I'll analyze each input-output pair:", "about_the_task"),
        ("Provide an instruction.", "about_the_task"),
        ("You gave me an instruction to provide an output for the given inputs.", "about_the_task"),
        ("Let's look at the pairs one by one.", "about_the_task"),
        ("Given to a friend, and their task was to find the truth.", "about_the_task"),
        ("What is the opposite of each word?", "question"),
        ("Input: hot\nOutput: cold", "demo"),
        ("   ", "empty"),
        ("Add.", "too_short"),
        ("word " * 200, "too_long"),
    ],
)
def test_text_that_is_not_an_instruction_is_rejected_with_its_reason(
    answer: str, reason: str
) -> None:
    assert judge_proposal(answer, max_chars=400, imperative=False) == ("", reason)


def test_the_instruction_is_taken_out_of_a_longer_answer_in_the_asked_form() -> None:
    answer = (
        "Sure! Looking at the pairs, each output is the opposite word.\n"
        "Instruction: **Write the antonym of the input word.**\nHope this helps."
    )
    assert judge_proposal(answer, max_chars=400, imperative=False) == (
        "Write the antonym of the input word.",
        "",
    )


def test_what_small_chat_models_write_about_the_instruction_is_rejected() -> None:
    """Answers SmolLM2 wrote to the chat template (bench runs, 2026-11-30)."""
    for answer in (
        'Instruction:\nThe instruction is about the "maximal" in "planned".',
        "The instruction is an example of a non-standard instruction set.",
        "Your friend's instructions are an example of an instruction from a fun book.",
    ):
        assert judge_proposal(answer, max_chars=400, imperative=True) == ("", "about_the_task")
    assert judge_proposal(
        "The instruction is to add the two numbers.", max_chars=400, imperative=True
    ) == ("Add the two numbers.", "")
