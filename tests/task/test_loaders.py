from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import DatasetError
from engine.task import load_task, split_task


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_jsonl_with_list_outputs(tmp_path: Path) -> None:
    path = write(
        tmp_path, "t.jsonl", '{"input": "a", "output": "b"}\n{"input": "c", "output": ["d", "e"]}\n'
    )
    task = load_task(path)
    assert [e.outputs for e in task.examples] == [("b",), ("d", "e")]
    assert task.examples[1].key == "line 2"


def test_csv(tmp_path: Path) -> None:
    task = load_task(write(tmp_path, "t.csv", 'input,output\nhello,h\n"a, b",a\n'))
    assert [(e.input, e.outputs) for e in task.examples] == [("hello", ("h",)), ("a, b", ("a",))]


def test_instruction_induction_with_annotations_and_execute(tmp_path: Path) -> None:
    body = {
        "metadata": {"num_examples": 2},
        "examples": {"1": {"input": "1 2", "output": "3"}, "2": {"input": "2 2", "output": "4"}},
    }
    write(tmp_path, "execute/sum.json", json.dumps(body))
    write(tmp_path, "annotations/sum.json", json.dumps({"annotations": ["Add them.", "Sum."]}))
    task = load_task(write(tmp_path, "induce/sum.json", json.dumps(body)))
    assert task.human_instruction == "Add them."
    assert task.test_examples is not None and len(task.test_examples) == 2
    assert split_task(task).test == task.test_examples


def test_instruction_induction_quirks(tmp_path: Path) -> None:
    cause = {
        "examples": {
            "1": {"cause": "It rained.", "effect": "Wet."},
            "2": {"cause": "C.", "effect": "E."},
        }
    }
    task = load_task(write(tmp_path, "cause_and_effect.json", json.dumps(cause)))
    assert {e.outputs for e in task.examples} == {("It rained.",), ("C.",)}
    assert all(e.input.startswith("Sentence 1: ") for e in task.examples)
    concept = {
        "examples": {"1": {"items": ["a", "b"], "concept": "x", "all_common_concepts": ["x", "y"]}}
    }
    task = load_task(write(tmp_path, "common_concept.json", json.dumps(concept)))
    assert task.metric == "f1" and task.examples[0].outputs == ("x", "y")
    rhymes = {"examples": {"1": {"input": "pig", "output": "big", "other_rhymes": ["big", "dig"]}}}
    assert load_task(write(tmp_path, "rhymes.json", json.dumps(rhymes))).examples[0].outputs == (
        "big",
        "dig",
    )
    translation = {
        "examples": {
            "1": {"input": "time", "output": "Zeit", "possible_translations": ["Zeit", "Mal"]}
        }
    }
    task = load_task(write(tmp_path, "translation_en-de.json", json.dumps(translation)))
    assert task.examples[0].outputs == ("Zeit", "Mal")


def test_bigbench_multiple_choice_and_exact(tmp_path: Path) -> None:
    mc = {"name": "nav", "metrics": ["multiple_choice_grade"], "task_prefix": "Do you return?",
          "examples": [{"input": "Step.", "target_scores": {"True": 0, "False": 1}}]}  # fmt: skip
    task = load_task(write(tmp_path, "nav/task.json", json.dumps(mc)))
    assert task.metric == "multiple_choice" and task.human_instruction == "Do you return?"
    assert task.examples[0].outputs == ("False",) and task.examples[0].choices == ("True", "False")
    exact = {
        "name": "t",
        "metrics": ["exact_str_match"],
        "examples": [{"input": "a", "target": ["b", "c"]}],
    }
    assert load_task(write(tmp_path, "ex/task.json", json.dumps(exact))).examples[0].outputs == (
        "b",
        "c",
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.jsonl", "  \n", r"empty\.jsonl: the file is empty"),
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
            "nooutput.jsonl",
            '{"input": "a", "output": ""}\n',
            r"nooutput\.jsonl: line 1: the example has no output",
        ),
        (
            "dup.json",
            '{"examples": {"1": {"input": "a", "output": "b"}, "1": {"input": "c", "output": "d"}}}',
            r"dup\.json: line 1: duplicate key '1'",
        ),
        (
            "ii.json",
            '{"examples": {"1": {"input": "a", "output": "b"}, "7": {"input": "c"}}}',
            r"ii\.json: example '7': missing field 'output'",
        ),
        ("cols.csv", "text,label\na,b\n", r"cols\.csv: line 1: missing column 'input'"),
        (
            "bb/task.json",
            '{"metrics": ["exact_str_match"], "examples": [{"input": "a"}]}',
            r"task\.json: examples\[0\]: missing field 'target'",
        ),
        (
            "bb2/task.json",
            '{"metrics": ["multiple_choice_grade"], "examples": [{"input": "a", "target_scores": {"x": 0}}]}',
            r"examples\[0\]: no choice",
        ),
    ],
)
def test_errors_name_the_place(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_task(write(tmp_path, name, text))


def test_explicit_format_overrides_guess(tmp_path: Path) -> None:
    path = write(tmp_path, "data.txt", '{"input": "a", "output": "b"}\n')
    assert load_task(path, format="jsonl").examples[0].input == "a"
    with pytest.raises(DatasetError, match="missing column"):
        load_task(path, format="csv")


II_SIZES = {"active_to_passive": (900, 100), "antonyms": (2592, 100), "cause_and_effect": (26, 25),
            "common_concept": (17, 16), "informal_to_formal": (15, 15), "sum": (4950, 100),
            "word_in_context": (4084, 100), "num_to_verbal": (9900, 100)}  # fmt: skip


def test_every_instruction_induction_file_loads(shared_data: Path) -> None:
    files = sorted((shared_data / "instruction_induction" / "induce").glob("*.json"))
    assert len(files) == 24
    for path in files:
        task = load_task(str(path))
        assert task.human_instruction, path.name
        assert task.test_examples, path.name
        assert all(e.outputs and all(o.strip() for o in e.outputs) for e in task.examples)
        if path.stem in II_SIZES:
            assert (len(task.examples), len(task.test_examples)) == II_SIZES[path.stem]
    assert (
        load_task(str(shared_data / "instruction_induction/induce/synonyms.json")).metric
        == "contains"
    )
    assert (
        load_task(str(shared_data / "instruction_induction/induce/taxonomy_animal.json")).metric
        == "exact_set"
    )


BB_SIZES = {
    "causal_judgment": 190,
    "navigate": 1000,
    "word_unscrambling": 8917,
    "tense": 286,
    "snarks": 181,
}


def test_every_bigbench_file_loads(shared_data: Path) -> None:
    files = sorted((shared_data / "bigbench_ii").glob("*/task.json"))
    assert len(files) == 22
    for path in files:
        task = load_task(str(path))
        assert task.human_instruction and task.examples, path
        if task.metric == "multiple_choice":
            assert all(e.choices and set(e.outputs) <= set(e.choices) for e in task.examples)
        if task.name in BB_SIZES:
            assert len(task.examples) == BB_SIZES[task.name]
