from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import DatasetError
from engine.task import load_task, split_task
from engine.task.loaders import detect_format


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def ii(examples: dict[str, dict[str, object]]) -> str:
    return json.dumps({"metadata": {"num_examples": len(examples)}, "examples": examples})


def test_jsonl_with_list_outputs_and_choices(tmp_path: Path) -> None:
    text = '{"input": "a", "output": "b"}\n\n{"input": "c", "output": ["d", "e"]}\n{"input": 5, "output": 6}\n'
    task = load_task(write(tmp_path, "t.jsonl", text))
    assert [(e.input, e.outputs) for e in task.examples] == [
        ("a", ("b",)),
        ("c", ("d", "e")),
        ("5", ("6",)),
    ]
    assert [e.key for e in task.examples] == ["line 1", "line 3", "line 4"]
    assert task.name == "t" and task.metric == "exact_match" and task.test_examples is None
    mc = '{"input": "Is it?", "output": "yes", "choices": ["yes", "no"]}\n'
    task = load_task(write(tmp_path, "mc.jsonl", mc))
    assert task.metric == "multiple_choice" and task.examples[0].choices == ("yes", "no")


def test_csv_and_tsv(tmp_path: Path) -> None:
    task = load_task(write(tmp_path, "t.csv", 'input,output,notes\nhello,h,x\n"a, b",a,\n'))
    assert [(e.input, e.outputs) for e in task.examples] == [("hello", ("h",)), ("a, b", ("a",))]
    assert [e.key for e in task.examples] == ["line 2", "line 3"]
    task = load_task(write(tmp_path, "t.tsv", "input\toutput\n12 30\t42\n"))
    assert task.examples[0].outputs == ("42",)


def test_format_is_detected_from_name_and_content(tmp_path: Path) -> None:
    cases = {
        "a.csv": "input,output\nx,y\n",
        "b.json": '{"input": "x", "output": "y"}\n{"input": "z", "output": "w"}\n',
        "c.txt": '{"input": "x", "output": "y"}',
        "d.json": ii({"1": {"input": "x", "output": "y"}}),
        "e.json": json.dumps({"examples": [{"input": "x", "target": "y"}]}, indent=2),
        "f": "input,output\nx,y\n",
    }
    expected = ["csv", "jsonl", "jsonl", "instruction-induction", "bigbench", "csv"]
    found = [detect_format(Path(write(tmp_path, n, t)), t) for n, t in cases.items()]
    assert found == expected


def test_explicit_format_overrides_the_guess(tmp_path: Path) -> None:
    path = write(tmp_path, "data.txt", '{"input": "a", "output": "b"}\n')
    assert load_task(path, format="jsonl").examples[0].input == "a"
    with pytest.raises(DatasetError, match=r"data\.txt: line 1: missing column 'input'"):
        load_task(path, format="csv")


def test_instruction_induction_with_annotations_and_execute_beside_it(tmp_path: Path) -> None:
    body = ii({"1": {"input": "1 2", "output": "3"}, "2": {"input": "2 2", "output": "4"}})
    write(tmp_path, "execute/sum.json", ii({"1": {"input": "5 5", "output": "10"}}))
    write(tmp_path, "annotations/sum.json", json.dumps({"annotations": ["Add them.", "Sum."]}))
    task = load_task(write(tmp_path, "induce/sum.json", body))
    assert task.name == "sum" and task.human_instruction == "Add them."
    assert [e.key for e in task.examples] == ["1", "2"]
    assert task.test_examples is not None and task.test_examples[0].outputs == ("10",)
    assert split_task(task).test == task.test_examples
    # an explicit annotations file wins over the one beside it
    other = write(tmp_path, "mine.json", json.dumps({"annotations": ["Compute the sum."]}))
    assert load_task(str(tmp_path / "induce/sum.json"), annotations=other).human_instruction == (
        "Compute the sum."
    )
    # a lone file: no test file, no human instruction, unless given
    alone = write(tmp_path, "elsewhere/sum.json", body)
    assert load_task(alone).test_examples is None and load_task(alone).human_instruction is None
    assert load_task(alone, annotations=other).human_instruction == "Compute the sum."


def test_instruction_induction_quirks(tmp_path: Path) -> None:
    cause = {"1": {"cause": "It rained.", "effect": "Wet."}, "2": {"cause": "C.", "effect": "E."}}
    task = load_task(write(tmp_path, "cause_and_effect.json", ii(cause)))
    assert [e.outputs for e in task.examples] == [("It rained.",), ("C.",)]
    assert {e.input for e in task.examples} == {
        "Sentence 1: Wet. Sentence 2: It rained.",
        "Sentence 1: C. Sentence 2: E.",
    }  # both orders occur, fixed per example
    concept = {"1": {"items": ["a", "b", "c"], "concept": "x", "all_common_concepts": ["x", "y"]}}
    task = load_task(write(tmp_path, "common_concept.json", ii(concept)))
    assert task.metric == "f1" and task.examples[0].outputs == ("x", "y")
    assert task.examples[0].input == "a, b, c"
    rhymes = {"1": {"input": "pig", "output": "big", "other_rhymes": ["big", "pig", "dig"]}}
    task = load_task(write(tmp_path, "rhymes.json", ii(rhymes)))
    assert task.examples[0].outputs == ("big", "dig")  # not the input word itself
    translation = {
        "1": {"input": "time", "output": "Zeit", "possible_translations": ["Mal", "Zeit"]}
    }
    task = load_task(write(tmp_path, "translation_en-de.json", ii(translation)))
    assert task.examples[0].outputs == ("Zeit", "Mal")
    wic = {"1": {"input": "S", "output": "not the same", "possible_outputs": ["no", "false"]}}
    task = load_task(write(tmp_path, "word_in_context.json", ii(wic)))
    assert task.examples[0].outputs == ("not the same",)
    similar = {"1": {"input": "S", "output": "4 - almost perfectly"}}
    task = load_task(write(tmp_path, "sentence_similarity.json", ii(similar)))
    assert task.examples[0].outputs == ("4 - almost perfectly", "4")


@pytest.mark.parametrize(
    ("name", "metric"),
    [
        ("common_concept", "f1"),
        ("informal_to_formal", "f1"),
        ("orthography_starts_with", "exact_set"),
        ("taxonomy_animal", "exact_set"),
        ("synonyms", "contains"),
        ("antonyms", "exact_match"),
        ("sum", "exact_match"),
    ],
)
def test_instruction_induction_metric_per_task(tmp_path: Path, name: str, metric: str) -> None:
    record = (
        {"items": ["a"], "concept": "x"}
        if name == "common_concept"
        else {"input": "a", "output": "b"}
    )
    assert load_task(write(tmp_path, f"{name}.json", ii({"1": record}))).metric == metric


def test_bigbench_multiple_choice_appends_the_choices_like_bigbench(tmp_path: Path) -> None:
    mc = {
        "name": "nav",
        "description": "Navigate.",
        "metrics": ["multiple_choice_grade"],
        "task_prefix": "Do you return?\n",
        "examples": [{"input": "Step.", "target_scores": {"True": 0, "False": 1}}],
    }
    task = load_task(write(tmp_path, "nav/task.json", json.dumps(mc)))
    assert task.metric == "multiple_choice" and task.human_instruction == "Do you return?"
    assert task.description == "Navigate." and task.test_examples is None
    example = task.examples[0]
    assert example.outputs == ("False",) and example.choices == ("True", "False")
    assert example.input == "Step.\n  choice: True\n  choice: False"
    assert example.key == "examples[0]"
    mc["append_choices_to_input"] = False
    task = load_task(write(tmp_path, "nav2/task.json", json.dumps(mc)))
    assert task.examples[0].input == "Step."
    # a folder that holds task.json stands for it
    assert load_task(str(tmp_path / "nav2")).examples == task.examples


def test_bigbench_exact_str_match_and_both_fields(tmp_path: Path) -> None:
    exact = {
        "name": "t",
        "metrics": ["exact_str_match"],
        "examples": [
            {"input": "a", "target": ["b", "c"]},
            {"input": "d", "target": "e", "target_scores": {"e": 1, "f": 0}},
        ],
    }
    task = load_task(write(tmp_path, "ex/task.json", json.dumps(exact)))
    assert task.metric == "exact_match" and task.human_instruction is None
    assert [e.outputs for e in task.examples] == [("b", "c"), ("e",)]
    assert task.examples[1].choices is None


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.jsonl", "  \n", r"empty\.jsonl: the file is empty; expected examples"),
        ("empty.json", "", r"empty\.json: the file is empty"),
        (
            "missing.jsonl",
            '{"input": "a", "output": "b"}\n{"input": "c"}\n',
            r"missing\.jsonl: line 2: missing field 'output'",
        ),
        (
            "bad.jsonl",
            '{"input": "a", "output": "b"}\n{"input": \n',
            r"bad\.jsonl: line 2: not valid JSON",
        ),
        (
            "bad.json",
            '{"examples": {\n  "1": {"input": "a", "output": "b"},\n  "2": {"input": "c" "output": "d"}\n}}',
            r"bad\.json: line 3 column 22: not valid JSON \(Expecting ',' delimiter\)",
        ),
        (
            "nooutput.jsonl",
            '{"input": "a", "output": ""}\n',
            r"nooutput\.jsonl: line 1: the example has no output",
        ),
        (
            "emptylist.jsonl",
            '{"input": "a", "output": "b"}\n{"input": "a", "output": []}\n',
            r"emptylist\.jsonl: line 2: the example has no output",
        ),
        (
            "null.jsonl",
            '{"input": "a", "output": null}\n',
            r"null\.jsonl: line 1: 'output' must be a string, a JSON object or a list of them",
        ),
        (
            "notobject.jsonl",
            '["a", "b"]\n',
            r"notobject\.jsonl: line 1: expected a JSON object with 'input' and 'output'",
        ),
        (
            "choice.jsonl",
            '{"input": "a", "output": "maybe", "choices": ["yes", "no"]}\n',
            r"choice\.jsonl: line 1: output 'maybe' is not one of the 'choices'",
        ),
        (
            "dup.json",
            '{"examples": {"1": {"input": "a", "output": "b"}, "1": {"input": "c", "output": "d"}}}',
            r"dup\.json: line 1: duplicate key '1' in a JSON object",
        ),
        (
            "dup2.json",
            '{\n "examples": {\n  "1": {"input": "a", "output": "b"},\n  "2": {"input": "c",\n   "input": "d", "output": "e"}\n }\n}',
            r"dup2\.json: line 5: duplicate key 'input'",
        ),
        (
            "dupline.jsonl",
            '{"input": "a", "output": "b"}\n{"input": "a", "output": "b", "output": "c"}\n',
            r"dupline\.jsonl: line 2: duplicate key 'output'",
        ),
        (
            "ii.json",
            '{"examples": {"1": {"input": "a", "output": "b"}, "7": {"input": "c"}}}',
            r"ii\.json: example '7': missing field 'output'",
        ),
        (
            "ii2.json",
            '{"examples": {"1": {"input": "a", "output": "b"}, "3": {"input": "c", "output": " "}}}',
            r"ii2\.json: example '3': the example has no output",
        ),
        (
            "cause_and_effect.json",
            '{"examples": {"1": {"cause": "a"}}}',
            r"cause_and_effect\.json: example '1': missing field 'cause' or 'effect'",
        ),
        ("cols.csv", "text,label\na,b\n", r"cols\.csv: line 1: missing column 'input'"),
        ("rows.csv", "input,output\na,b\nc,\n", r"rows\.csv: line 3: the example has no output"),
        ("header.csv", "input,output\n", r"header\.csv: no examples"),
        (
            "bb/task.json",
            '{"metrics": ["exact_str_match"], "examples": [{"input": "a", "target": "b"}, {"input": "a"}]}',
            r"bb/task\.json: examples\[1\]: missing field 'target'",
        ),
        (
            "bb2/task.json",
            '{"metrics": ["multiple_choice_grade"], "examples": [{"input": "a", "target_scores": {"x": 0}}]}',
            r"bb2/task\.json: examples\[0\]: no choice in 'target_scores' is correct",
        ),
        (
            "bb3/task.json",
            '{"metrics": ["multiple_choice_grade"], "examples": [{"input": "a", "target": "x"}]}',
            r"bb3/task\.json: examples\[0\]: missing field 'target_scores'",
        ),
        (
            "odd.json",
            '{"tasks": []}',
            r"odd\.json: a JSON object that is no known task format",
        ),
        ("plain.txt", "hello world\n", r"plain\.txt: cannot tell the format; give task_format"),
    ],
)
def test_errors_name_the_place(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_task(write(tmp_path, name, text))


def test_unknown_format_lists_the_formats(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"input": "a", "output": "b"}\n')
    with pytest.raises(DatasetError, match=r"t\.jsonl: unknown format 'yaml'; choose one of jsonl"):
        load_task(path, format="yaml")


def test_bad_annotations_file_is_named(tmp_path: Path) -> None:
    body = ii({"1": {"input": "a", "output": "b"}})
    write(tmp_path, "annotations/t.json", json.dumps({"annotations": []}))
    with pytest.raises(DatasetError, match=r"annotations/t\.json: expected an object"):
        load_task(write(tmp_path, "induce/t.json", body))
    with pytest.raises(DatasetError, match=r"nope\.json: no such task file"):
        load_task(str(tmp_path / "induce/t.json"), annotations=tmp_path / "nope.json")


def test_broken_execute_file_is_named(tmp_path: Path) -> None:
    write(tmp_path, "execute/t.json", '{"examples": {"1": {"input": "a"}}}')
    with pytest.raises(DatasetError, match=r"execute/t\.json: example '1': missing field 'output'"):
        load_task(write(tmp_path, "induce/t.json", ii({"1": {"input": "a", "output": "b"}})))
