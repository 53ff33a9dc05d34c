"""Inputs of several named fields: read from every format, shown labelled, hashed as fields."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import DatasetError
from engine.propose import Evidence, Templates
from engine.study.prompting import ScoringPrompt
from engine.task import Example, Fields, load_task, split_task
from engine.task.fields import input_of, label, with_fields
from engine.task.fingerprint import task_fingerprint


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def tickets(count: int = 12) -> list[dict[str, object]]:
    return [
        {
            "input": {"title": f"order {i}", "body": f"{i} apples and {2 * i} pears"},
            "output": {"category": "billing" if i % 2 else "shipping", "urgency": "low"},
        }
        for i in range(count)
    ]


def jsonl(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def test_a_jsonl_object_input_is_named_fields_never_a_python_repr(tmp_path: Path) -> None:
    task = load_task(write(tmp_path, "t.jsonl", jsonl(tickets())))
    first = task.examples[0]
    assert task.fields == ("title", "body")
    assert first.fields == (("title", "order 0"), ("body", "0 apples and 0 pears"))
    assert first.input == "Title: order 0\nBody: 0 apples and 0 pears"
    assert "{'" not in first.input and "{'" not in first.outputs[0]
    assert json.loads(first.outputs[0]) == {"category": "shipping", "urgency": "low"}
    # read again from its place in the file (a stream): the same example, fields and all
    assert task.examples[5] == task.examples[5] and task.examples[5].fields is not None
    assert split_task(task, seed=0).scoring[0].fields is not None


def test_field_values_are_text_and_structured_values_json() -> None:
    text, fields = input_of({"n": 5, "ok": True, "tags": ["a", "é"], "none": None}, "x")
    assert fields == (("n", "5"), ("ok", "true"), ("tags", '["a", "é"]'), ("none", "null"))
    assert text == 'N: 5\nOk: true\nTags: ["a", "é"]\nNone: null'
    assert input_of(["a", "b"], "x") == ('["a", "b"]', None)  # a list input: JSON, not a repr
    assert input_of(7, "x") == ("7", None)
    assert label("order_id") == "Order id"
    with pytest.raises(DatasetError, match="x: the input is an empty object"):
        input_of({}, "x")


def test_several_keys_or_csv_columns_make_the_fields(tmp_path: Path) -> None:
    flat = [{"title": f"t{i}", "body": f"b{i}", "output": f"o{i}"} for i in range(8)]
    task = load_task(write(tmp_path, "flat.jsonl", jsonl(flat)), fields=Fields("title, body"))
    assert task.fields == ("title", "body") and task.examples[1].input == "Title: t1\nBody: b1"
    csv = 'title,body,output,notes\nhi,there,x,-\nyo,"a, b",y,-\n'
    task = load_task(write(tmp_path, "t.csv", csv), fields=Fields("title,body"))
    assert [e.fields for e in task.examples] == [
        (("title", "hi"), ("body", "there")),
        (("title", "yo"), ("body", "a, b")),
    ]
    with pytest.raises(
        DatasetError, match=r"missing column 'input'.*input_field=NAME.*several input names"
    ):
        load_task(write(tmp_path, "u.csv", csv))
    text = '{"title": "a", "body": "c", "output": "b"}\n{"title": 1}\n'
    with pytest.raises(DatasetError, match=r"line 2: missing field 'body'"):
        load_task(write(tmp_path, "m.jsonl", text), fields=Fields("title,body"))


def test_a_task_file_carries_name_human_instruction_and_fielded_examples(tmp_path: Path) -> None:
    document = {
        "name": "tickets",
        "human_instruction": "Classify the ticket.",
        "description": "support tickets",
        "examples": tickets(),
    }
    task = load_task(write(tmp_path, "tickets.json", json.dumps(document, indent=2)))
    assert (task.name, task.human_instruction, task.description) == (
        "tickets",
        "Classify the ticket.",
        "support tickets",
    )
    assert task.fields == ("title", "body") and task.examples[3].key == "examples[3]"
    bad = {"exmaples": [], "examples": [{"input": "a", "output": "b"}]}
    with pytest.raises(DatasetError, match=r"unknown key 'exmaples'; a task file holds"):
        load_task(write(tmp_path, "bad.json", json.dumps(bad)))
    array = load_task(write(tmp_path, "a.json", json.dumps(tickets())))
    assert array.fields == ("title", "body")


def test_inputs_given_two_ways_are_refused_naming_both_places(tmp_path: Path) -> None:
    mixed = '{"input": "a", "output": "b"}\n{"input": {"x": 1}, "output": "b"}\n'
    with pytest.raises(DatasetError, match=r"line 2: the input is an object.*line 1's is text"):
        load_task(write(tmp_path, "mixed.jsonl", mixed))
    records = [{"input": {"x": "1"}, "output": "b"}, {"input": "a", "output": "c"}]
    with pytest.raises(DatasetError, match=r"\[1\]: the input is text, but \[0\]'s is an object"):
        load_task(write(tmp_path, "mixed.json", json.dumps(records)))


def test_the_fingerprint_hashes_the_fields_and_keeps_text_tasks_as_they_were(
    tmp_path: Path,
) -> None:
    text = load_task(write(tmp_path, "x.jsonl", '{"input": "a", "output": "b"}\n'))
    before = hashlib.sha256(b'["x","exact_match",null]["a",["b"]]').hexdigest()[:16]
    assert task_fingerprint(text) == before  # a text task hashes as it did before fields
    named = load_task(write(tmp_path, "n.jsonl", jsonl(tickets())))
    shown = [
        {**r, "input": "\n".join(f"{k.title()}: {v}" for k, v in r["input"].items())}  # type: ignore[attr-defined]
        for r in tickets()
    ]
    same_text = load_task(write(tmp_path, "s.jsonl", jsonl(shown)))
    assert same_text.examples[0].input == named.examples[0].input
    assert task_fingerprint(named) != task_fingerprint(same_text)


def test_the_templates_show_the_fields_labelled_in_scoring_demos_and_reflections() -> None:
    templates = Templates().for_fields()
    example = with_fields((("title", "order 3"), ("body", "3 apples")), ('{"a": 1}',))
    demo = with_fields((("title", "order 1"), ("body", "1 pear")), ('{"a": 0}',))
    asking = ScoringPrompt(templates, (demo,), "output-only")
    assert asking.completion("Classify.", example.input) == (
        'Classify.\n\nTitle: order 1\nBody: 1 pear\nOutput: {"a": 0}\n\nTitle: order 3\nBody: '
        "3 apples\nOutput:"
    )
    messages = asking.messages("Classify.", example.input)
    assert messages[1]["content"] == "Classify.\n\nTitle: order 1\nBody: 1 pear\nOutput:"
    assert messages[-1]["content"] == "Title: order 3\nBody: 3 apples\nOutput:"
    assert templates.demos([(demo.input, demo.outputs[0])]).startswith("Title: order 1\nBody:")
    shown = templates.evidence([Evidence(example.input, example.outputs[0], "{}", False)])
    assert shown.startswith("Title: order 3\nBody: 3 apples\nExpected output:")
    assert Templates().scoring == "{instruction}\n\nInput: {input}\nOutput:"  # text tasks


def test_tasks_reports_the_fields_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    path = write(tmp_path, "t.jsonl", jsonl(tickets()))
    assert main(["tasks", path, "--examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "input fields: title, body" in out and "Title: order 0 Body: 0 apples" in out
    flat = write(tmp_path, "f.csv", "q,ctx,output\nwho,here,me\n")
    assert main(["tasks", flat, "--input-field", "q,ctx"]) == 0
    assert "input fields: q, ctx" in capsys.readouterr().out


def test_an_example_of_fields_compares_by_its_fields() -> None:
    one = with_fields((("a", "1"),), ("x",), key="k")
    assert one == Example("A: 1", ("x",), key="k", fields=(("a", "1"),))
    assert one != Example("A: 1", ("x",), key="k")


def test_a_template_may_name_the_fields_of_the_task(tmp_path: Path) -> None:
    from engine.errors import ConfigError
    from engine.propose import load_templates

    path = tmp_path / "mine.toml"
    path.write_text(
        'scoring = "{instruction}\\n\\nTicket {title}: {body}\\nDepartment:"\n'
        'demo = "Ticket {title}: {body}\\nDepartment: {output}"\n'
    )
    templates = load_templates(path).for_task(("title", "body"))
    example = with_fields((("title", "#7"), ("body", "charged twice")), ("billing",))
    demo = with_fields((("title", "#1"), ("body", "lost parcel")), ("shipping",))
    asking = ScoringPrompt(templates, (demo,), "output-only")
    assert asking.completion("Route it.", example.input, example.fields) == (
        "Route it.\n\nTicket #1: lost parcel\nDepartment: shipping\n\nTicket #7: charged twice"
        "\nDepartment:"
    )
    messages = asking.messages("Route it.", example.input, example.fields)
    assert messages[-1]["content"] == "Ticket #7: charged twice\nDepartment:"
    problem = r"\{title\}, which is neither one of its own .* the task's fields are name, body"
    with pytest.raises(ConfigError, match=problem):
        load_templates(path).for_task(("name", "body"))
    path.write_text('scoring = "{instruction}\\n\\nTicket {titel}\\nDepartment:"\n')
    with pytest.raises(ConfigError, match=r"has the placeholder \{titel\}"):
        load_templates(path).for_task(("title", "body"))
    with pytest.raises(ConfigError, match="the task's inputs are text, with no fields"):
        load_templates(path).for_task(())
    path.write_text('variant = "Reword {instruction} for {title}"\n')  # one instruction: no fields
    with pytest.raises(ConfigError, match=r"field 'variant' has the placeholder \{title\}"):
        load_templates(path)
