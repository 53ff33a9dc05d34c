"""Reflections and merges: the templates as data, reading the revised instruction out of an
answer however the model wrote it, and the proposer's calls (what they ask, what they keep)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.llm.protocol.results import Completion, Usage
from engine.propose import (
    Deduplicating,
    Evidence,
    Parent,
    Templates,
    judge_revision,
    load_templates,
    read_revision,
)
from engine.propose.normalise import REJECTIONS
from tests.propose.test_proposer import ScriptedClient, proposer

WRONG = Evidence("3 4", "7", "12", right=False)
RIGHT = Evidence("1 1", "2", "2", right=True)


@pytest.mark.parametrize(
    ("answer", "instruction"),
    [
        ("Diagnosis: it adds wrong.\nInstruction: Add the two numbers.", "Add the two numbers."),
        (
            "The instruction: 'Add them' is vague.\n\nImproved instruction: Add both numbers.",
            "Add both numbers.",
        ),
        ("**Revised instruction:** Write the sum only.", "Write the sum only."),
        (
            "Diagnosis: vague.\n\n### Improved Instruction\n\nWrite the sum.\n\nDone.",
            "Write the sum.",
        ),
        (
            "Analysis first.\n\n**New instruction:**\nWrite the sum\nof the two numbers.",
            "Write the sum of the two numbers.",
        ),
        (
            "Diagnosis: vague.\n\n```\nWrite the sum of both numbers.\n```",
            "Write the sum of both numbers.",
        ),
        (" Write the sum of the numbers.", "Write the sum of the numbers."),  # a continuation
        (  # as Qwen2.5-Coder-1.5B wrote one: the label inside the diagnosis's line, quoted
            "They are not the larger animal. The improved instruction should be: "
            '"Name the larger animal of the two." This is clearer.',
            "Name the larger animal of the two.",
        ),
        (
            "Diagnosis: vague. Revised instruction:\n\nWrite the larger animal only.",
            "Write the larger animal only.",
        ),
        (
            "They do not compare. The improved instruction is as follows:\n\n"
            "Name the smaller animal of the two.",
            "Name the smaller animal of the two.",
        ),
        ("Diagnosis: the model fails.\n\nIt should do better.", ""),
        ("Diagnosis: it adds wrong.", ""),
    ],
)
def test_the_revised_instruction_is_read_in_the_forms_models_write_it(
    answer: str, instruction: str
) -> None:
    assert " ".join(read_revision(answer).split()) == instruction


@pytest.mark.parametrize(
    ("answer", "instruction"),
    [  # as Qwen2.5-Coder-1.5B wrote them in the proposals bench, diagnoses shortened
        (
            "They all mention a non-animal.\n\nThe instruction should read:\n"
            '"Identify the larger animal of the two. The output is one animal name."\n'
            "This improved instruction clearly tells the model the task.",
            "Identify the larger animal of the two. The output is one animal name.",
        ),
        (
            "The instruction does not say what form the answer takes.\n\nAn improved "
            "instruction that makes the model give the expected outputs would be:\n"
            "Rewrite each word in the given sentence to its plural form.\n"
            "The instruction clearly tells the model that each word should be plural.",
            "Rewrite each word in the given sentence to its plural form.",
        ),
        (
            "The model adds the first number to 28. To make the model give the expected outputs, "
            'the instruction should say: "Calculate the sum of the two input numbers." The '
            "answer will be in the form of an integer.",
            "Calculate the sum of the two input numbers.",
        ),
        (
            "They do not translate. An improved instruction that makes the model give the "
            'expected outputs would be: "Translate each word into Latin." This improved '
            "instruction specifies the language.",
            "Translate each word into Latin.",
        ),
    ],
)
def test_a_revision_led_into_by_a_sentence_is_found(answer: str, instruction: str) -> None:
    assert judge_revision(answer, max_chars=400) == (instruction, "")


def test_an_unquoted_lead_without_an_adjective_is_more_diagnosis() -> None:
    answer = "The instruction should be clearer: it must say what to add, and it does not."
    assert judge_revision(answer, max_chars=400)[0] == ""


def test_the_last_labelled_line_wins_over_a_quoted_old_one() -> None:
    answer = (
        "Instruction: Add them. (the old one)\nDiagnosis: vague.\nInstruction: Add both numbers."
    )
    assert read_revision(answer) == "Add both numbers."


@pytest.mark.parametrize(
    "answer",
    [
        # the asked-for line left as the template wrote it, the revision under another label
        "The sum is missing.\n\n**Instruction:** Add the two numbers and give the sum.\n\n"
        "**Improved Instruction:** <the improved instruction>",
        # ... or led into by a sentence
        "The sum is missing. The improved instruction would be:\n\nAdd the two numbers and "
        "give the sum.\n\nInstruction: <the improved instruction>",
    ],
)
def test_a_placeholder_left_in_the_last_line_falls_back_to_the_revision_before(
    answer: str,
) -> None:
    assert judge_revision(answer, max_chars=400) == ("Add the two numbers and give the sum.", "")


def test_an_answer_whose_every_reading_is_rejected_says_why_its_likeliest_was() -> None:
    answer = "Instruction: What is the sum?\nInstruction: <the improved instruction>"
    assert judge_revision(answer, max_chars=400) == ("", "about_the_task")


def test_a_revision_is_judged_like_a_proposal_and_none_is_no_instruction() -> None:
    assert judge_revision("Diagnosis: x.\nInstruction: Add the numbers.", max_chars=400) == (
        "Add the numbers.",
        "",
    )
    assert judge_revision("Diagnosis: the model fails.\n\nMore text.", max_chars=400) == (
        "",
        "no_instruction",
    )
    assert judge_revision("   ", max_chars=400) == ("", "empty")
    assert judge_revision("Instruction: What is the sum?", max_chars=400) == ("", "question")
    assert judge_revision("Instruction: " + "add " * 200, max_chars=400)[1] == "too_long"
    assert "no_instruction" in REJECTIONS


@given(st.text(max_size=400))
def test_reading_any_answer_gives_a_known_verdict(answer: str) -> None:
    instruction, why = judge_revision(answer, max_chars=400)
    assert (instruction and not why) or (not instruction and why in REJECTIONS)
    assert len(instruction) <= 400 and "\n" not in instruction


@given(st.from_regex(r"[A-Z][a-z]{2,8}( [a-z]{2,8}){1,8}\.", fullmatch=True))
def test_an_instruction_in_the_asked_for_form_comes_back_whole(instruction: str) -> None:
    answer = f"Diagnosis: the answers are off.\nInstruction: {instruction}"
    if judge_revision(instruction, max_chars=400)[0]:  # an instruction the cleaning keeps
        assert judge_revision(answer, max_chars=400) == (instruction, "")


def test_the_reflection_and_merge_templates_render_the_evidence() -> None:
    templates = Templates()
    examples = templates.evidence([WRONG, RIGHT, Evidence("5 5", "10", "", right=False)])
    assert "Input: 3 4\nExpected output: 7\nThe model's answer (wrong): 12" in examples
    assert "The model's answer (right): 2" in examples
    assert "The model's answer (wrong): (no answer kept)" in examples
    chat = templates.reflect_chat.format(instruction="Add them.", examples=examples)
    assert chat.startswith("A language model was given this instruction for a task:\n\nAdd them.")
    assert chat.endswith("Instruction: <the improved instruction>")
    assert templates.reflect.format(instruction="x", examples="y").endswith("Diagnosis:")
    merge = templates.merge_chat.format(
        first="A.",
        second="B.",
        first_only=templates.merge_examples([WRONG]),
        second_only=templates.merge_examples([]),
    )
    assert "Instruction A: A.\n\nInstruction B: B." in merge and "(none)" in merge
    assert templates.merge.format(first="", second="", first_only="", second_only="").endswith(
        "\nInstruction:"
    )


def test_a_templates_file_overrides_reflection_and_names_a_bad_placeholder(tmp_path: Path) -> None:
    good = tmp_path / "t.toml"
    good.write_text('reflect_chat = "Fix {instruction} given {examples}. Instruction:"\n')
    assert load_templates(good).reflect_chat.startswith("Fix {instruction}")
    bad = tmp_path / "bad.toml"
    bad.write_text('merge_chat = "Combine {first} and {third}"\n')
    with pytest.raises(ConfigError, match=r"merge_chat.*\{third\}"):
        load_templates(bad)


@pytest.mark.anyio
async def test_a_reflection_shows_the_answers_and_keeps_revisions_with_their_parent() -> None:
    client = ScriptedClient(
        [
            [
                "Diagnosis: it multiplies.\nInstruction: Add the two numbers.",
                "Diagnosis: only a diagnosis.",
                "Diagnosis: same.\nInstruction: Add the two numbers.",
            ]
        ]
    )
    source = Deduplicating(proposer(client))
    batch = await source.reflect(Parent(4, "Combine the numbers."), [WRONG, RIGHT], 3)
    request = client.requests[0]
    assert request["kind"] == "chat" and request["n"] == 3
    assert "Combine the numbers." in request["prompt"]
    assert "The model's answer (wrong): 12" in request["prompt"]
    assert request["max_tokens"] > proposer(client).max_tokens  # room for the diagnosis
    assert [(p.text, p.origin, p.parents) for p in batch.proposals] == [
        ("Add the two numbers.", "reflect", (4,))
    ]
    assert batch.kind == "reflect" and batch.generated == 3
    assert batch.reasons == {"no_instruction": 1} and batch.duplicates == 1
    assert len(batch.raw) == 3


@pytest.mark.anyio
async def test_completions_reflections_and_merges_continue_their_templates() -> None:
    client = ScriptedClient(
        [[" It multiplies.\nInstruction: Add both numbers."], [" Add the numbers, then stop."]]
    )
    source = proposer(client, api="completions")
    reflected = await source.reflect(Parent(1, "Combine."), [WRONG], 1)
    merged = await source.merge(Parent(1, "Combine."), Parent(2, "Sum."), [WRONG], [RIGHT], 1)
    assert client.requests[0]["prompt"].endswith("Diagnosis:")
    assert client.requests[1]["prompt"].endswith("Instruction:")
    assert "Instruction A: Combine.\n\nInstruction B: Sum." in client.requests[1]["prompt"]
    assert [(p.text, p.origin, p.parents) for p in reflected.proposals] == [
        ("Add both numbers.", "reflect", (1,))
    ]
    assert [(p.text, p.origin, p.parents) for p in merged.proposals] == [
        ("Add the numbers, then stop.", "merge", (1, 2))
    ]


@pytest.mark.anyio
async def test_a_reflection_cut_short_keeps_the_finished_sentences_of_its_instruction() -> None:
    source = proposer(ScriptedClient([]))
    completion = Completion(
        ("Diagnosis: x.\nInstruction: Add the numbers. Then write the", "Diagnosis: it is"),
        ("length", "length"),
        Usage(1, 1, 2),
        0.0,
        1,
        "p",
        "m",
    )
    batch = source._batch(completion, "reflect", (0,), source._revision)
    assert [p.text for p in batch.proposals] == ["Add the numbers."]
    assert batch.rejected == 1
