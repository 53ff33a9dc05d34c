"""Checks of an answer: each kind's edge cases (malformed JSON, wrong types, unicode), their
weighted mean, where they are refused, and that every one is a reward in [0, 1]."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.settings import StudyConfig, load_config_file
from engine.settings.checks import Check, check_examples, checks_binary, grader
from engine.task import Example


def checks(*tables: dict[str, Any]) -> list[Check]:
    return msgspec.convert(list(tables), list[Check])


def graded(tables: list[dict[str, Any]], answer: str, *outputs: str, metric: str = "exact_match"):  # type: ignore[no-untyped-def]
    return grader(checks(*tables), metric)(answer, Example("x", outputs or ("y",)))


TICKET = json.dumps({"category": "billing", "urgency": "high"})


def test_label_picks_one_label_of_the_set() -> None:
    label = {"kind": "label", "labels": ["billing", "shipping", "café"]}
    assert graded([label], "Billing.", "billing") == (1.0, "")
    assert graded([label], "Answer: shipping", "billing") == (0.0, "")
    assert graded([label], "CAFÉ", "café") == (1.0, "")  # unicode, case aside
    reward, why = graded([label], "billing or shipping", "billing")
    assert reward == 0.0 and why.startswith("label: names none of the labels")
    reward, why = graded([label], "", "billing")
    assert reward == 0.0 and "names none" in why
    anything = {**label, "expected": False}
    assert graded([anything], "shipping", "billing") == (1.0, "")


def test_json_reads_objects_fenced_or_in_words_and_says_why_not() -> None:
    shape = {"kind": "json", "required": ["category", "urgency"]}
    assert graded([shape], TICKET) == (1.0, "")
    assert graded([shape], f"```json\n{TICKET}\n```") == (1.0, "")
    assert graded([shape], f"Here it is: {TICKET} -- done") == (1.0, "")
    for answer, why in (
        ('{"category": "billing", "urgency": ', "json: not JSON (Expecting value"),
        ("", "json: not JSON (the answer is empty)"),
        ('["billing", "high"]', "json: not a JSON object (a list)"),
        ('"billing"', "json: not a JSON object (a string)"),
        ('{"category": "billing"}', "json: missing key 'urgency'"),
        ("{'category': 'billing'}", "json: not JSON"),  # a Python dict is not JSON
        ("[" * 100 + "]" * 100, "json: not JSON we read (nested deeper than 64 levels"),
    ):
        reward, said = graded([shape], answer)
        assert reward == 0.0 and said.startswith(why), (answer, said)
    unicode = json.dumps({"catégorie": "facturation", "urgency": "haute"}, ensure_ascii=False)
    assert graded([{"kind": "json", "required": ["catégorie"]}], unicode) == (1.0, "")


def test_json_schema_and_compare_with_the_expected_output() -> None:
    schema = {
        "type": "object",
        "properties": {"urgency": {"enum": ["low", "high"]}, "count": {"type": "integer"}},
        "required": ["urgency"],
    }
    check = {"kind": "json", "schema": schema}
    assert graded([check], TICKET) == (1.0, "")
    reward, why = graded([check], '{"urgency": "urgent"}')
    assert (
        reward == 0.0 and why == "json: schema: 'urgent' is not one of ['low', 'high'] at urgency"
    )
    reward, why = graded([check], '{"urgency": "low", "count": "3"}')  # a wrong type
    assert reward == 0.0 and "'3' is not of type 'integer' at count" in why
    compare = {"kind": "json", "compare": ["category", "urgency"]}
    assert graded([compare], TICKET, TICKET) == (1.0, "")
    assert graded([compare], '{"category": " Billing ", "urgency": "low"}', TICKET) == (0.5, "")
    assert graded([compare], '{"category": true}', json.dumps({"category": 1})) == (0.0, "")
    other = json.dumps({"category": "shipping", "urgency": "low"})
    assert graded([compare], other, TICKET, other) == (1.0, "")  # any accepted output


def test_number_within_a_tolerance() -> None:
    exact = {"kind": "number"}
    assert graded([exact], "The answer is 42.", "42") == (1.0, "")
    assert graded([exact], "1,234.5 apples", "1234.5") == (1.0, "")
    assert graded([exact], "−3", "-3") == (1.0, "")  # a unicode minus
    assert graded([exact], "٤٢", "42") == (1.0, "")  # Arabic-Indic digits
    assert graded([exact], "43", "42") == (0.0, "")
    assert graded([{"kind": "number", "tolerance": 1}], "43", "42") == (1.0, "")
    assert graded([{"kind": "number", "tolerance": 0.05, "relative": True}], "104", "100") == (
        1.0,
        "",
    )
    assert graded([{"kind": "number", "tolerance": 0.05, "relative": True}], "106", "100")[0] == 0
    for answer in ("forty-two", "1e999", "nan"):
        reward, why = graded([exact], answer, "42")
        assert reward == 0.0 and why.startswith("number: no number in the answer")


def test_regex_contains_and_length() -> None:
    assert graded([{"kind": "regex", "pattern": r"^\d{4}-\d{2}-\d{2}$"}], "2024-05-01") == (1, "")
    reward, why = graded([{"kind": "regex", "pattern": "^yes$"}], "Yes")
    assert reward == 0.0 and why == "regex: does not match '^yes$'"
    assert graded([{"kind": "regex", "pattern": "^yes$", "ignore_case": True}], "Yes")[0] == 1
    both = {"kind": "contains_all", "values": ["refund", "ÉTÉ"]}
    assert graded([both], "A refund for the été order") == (1.0, "")
    assert graded([both], "a refund") == (0.0, "contains_all: lacks 'ÉTÉ'")
    assert graded([{**both, "case": True}], "A refund for the été order")[0] == 0.0
    some = {"kind": "contains_any", "values": ["sorry", "apolog"]}
    assert graded([some], "We apologise.")[0] == 1.0
    assert graded([some], "No.") == (0.0, "contains_any: contains none of the values")
    short = {"kind": "length", "max": 5}
    assert graded([short], "  héllo  ") == (1.0, "")  # characters, not bytes; stripped
    assert graded([short], "hello!") == (0.0, "length: 6 characters, not at most 5")
    words = {"kind": "length", "min": 2, "max": 3, "unit": "words"}
    assert graded([words], "one two")[0] == 1.0 and graded([words], "one")[0] == 0.0


def test_a_weighted_mean_of_checks_and_the_task_metric() -> None:
    tables = [
        {"kind": "json", "required": ["category"], "weight": 2},
        {"kind": "length", "max": 10},
    ]
    assert graded(tables, '{"category": "billing"}') == (
        2 / 3,
        "length: 23 characters, not at most 10",
    )
    reward, why = graded(tables, "nope")
    assert reward == pytest.approx(1 / 3) and why.startswith("json: not JSON")
    match = [{"kind": "match"}, {"kind": "match", "metric": "f1"}]
    assert graded(match, "the big dog", "big cat", metric="exact_match") == (0.25, "")
    assert not checks_binary(checks(*tables), "exact_match")
    assert checks_binary(checks({"kind": "label", "labels": ["a"]}), "f1")
    assert not checks_binary(checks({"kind": "json", "compare": ["a", "b"]}), "exact_match")
    assert not checks_binary(checks({"kind": "match"}), "f1")  # the task's metric decides
    assert checks_binary((), "exact_match") and not checks_binary((), "f1")


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"kind": "regx"}, "checks[0].kind: Invalid value 'regx'; choose one of label, json"),
        ({"kind": "regex", "pattern": "("}, "checks[0]: pattern: not a regular expression"),
        ({"kind": "json", "schema": {"type": "nope"}}, "checks[0]: schema: not a JSON Schema"),
        ({"kind": "length", "min": 5, "max": 2}, "checks[0]: min (5) is above max (2)"),
        ({"kind": "length"}, "checks[0]: give min, max or both"),
        ({"kind": "number", "tolerance": -1}, "checks[0].tolerance: Expected `float` >= 0.0"),
        ({"kind": "label", "labels": []}, "checks[0].labels: Expected `array` of length >= 1"),
        ({"kind": "label", "labls": ["a"]}, "checks[0].labls: unknown field; did you mean"),
        ({"kind": "json", "weight": 0}, "checks[0].weight: Expected `float` > 0.0"),
        ({"kind": "match", "metric": "bleu"}, "checks[0].metric: Invalid enum value 'bleu'"),
    ],
)
def test_a_bad_check_is_refused_where_it_is_declared(table: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        StudyConfig.of(task="sum", checks=[table])
    assert str(raised.value).startswith(problem)


def test_checks_in_a_toml_file_are_named_by_their_place(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(
        '[[scoring.checks]]\nkind = "json"\nrequired = ["a"]\n\n'
        '[[scoring.checks]]\nkind = "regex"\npattern = "[unclosed"\n'
    )
    with pytest.raises(ConfigError, match=r"study.toml': scoring.checks\[1\]: pattern: not a"):
        load_config_file(path)
    path.write_text('[[scoring.checks]]\nkind = "number"\ntolerance = 0.5\n')
    config = StudyConfig.of(task="sum", **load_config_file(path))
    assert config.scoring.checks is not None and config.scoring.checks[0].name == "number"


def test_expected_outputs_a_check_cannot_read_are_refused_naming_the_example() -> None:
    examples = [Example("a", ("12",), key="line 1"), Example("b", ("twelve",), key="line 2")]
    with pytest.raises(ConfigError, match=r"checks\[0\] \(number\): example line 2: its output"):
        check_examples(checks({"kind": "number"}), examples, "checks")
    with pytest.raises(ConfigError, match="example line 1: its output '12' is none of the labels"):
        check_examples(checks({"kind": "label", "labels": ["x"]}), examples, "checks")
    with pytest.raises(ConfigError, match="example line 1: its output is not a JSON object"):
        check_examples(checks({"kind": "json", "compare": ["a"]}), examples, "checks")
    schema = {"kind": "json", "schema": {"type": "object"}}
    with pytest.raises(ConfigError, match="its output is not JSON"):
        check_examples(checks(schema), [Example("a", ("{oops",), key="k")], "checks")
    check_examples(checks({"kind": "regex", "pattern": "x"}), examples, "checks")  # reads none


ALL_KINDS: list[dict[str, Any]] = [
    {"kind": "label", "labels": ["yes", "no", "peut-être"]},
    {"kind": "json", "required": ["a"], "compare": ["a", "b"]},
    {"kind": "json", "schema": {"type": "object", "properties": {"a": {"type": "number"}}}},
    {"kind": "number", "tolerance": 0.5},
    {"kind": "regex", "pattern": r"\d+", "ignore_case": True},
    {"kind": "contains_all", "values": ["a", "é"]},
    {"kind": "contains_any", "values": ["b", "{"]},
    {"kind": "length", "min": 1, "max": 40, "unit": "words"},
    {"kind": "match", "metric": "f1"},
    {"kind": "match"},
]


@settings(max_examples=300, deadline=None)
@given(
    answer=st.one_of(
        st.text(),
        st.from_regex(r'\{"a": ?-?\d{1,4}(\.\d+)?, ?"b": ?"[a-zé ]{0,5}"\}', fullmatch=True),
        st.builds(json.dumps, st.recursive(st.none() | st.integers() | st.text(), st.lists)),
    ),
    output=st.sampled_from(['{"a": 3, "b": "x"}', "12", "yes", "peut-être"]),
)
def test_every_check_is_a_reward_in_0_1_for_any_answer(answer: str, output: str) -> None:
    example = Example("x", (output,))
    for table in ALL_KINDS:
        reward, why = grader(checks(table), "exact_match")(answer, example)
        assert 0.0 <= reward <= 1.0 and isinstance(why, str)
    reward, _ = grader(checks(*ALL_KINDS), "f1")(answer, example)
    assert 0.0 <= reward <= 1.0


def test_tasks_names_a_task_files_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    examples = [{"input": f"q{i}", "output": str(i)} for i in range(8)]
    document = {"examples": examples, "checks": [{"kind": "number"}, {"kind": "length", "max": 9}]}
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps(document))
    assert main(["tasks", str(path)]) == 0
    assert "checks: number, length (they score the answers" in capsys.readouterr().out
