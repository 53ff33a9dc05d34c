"""An inline task whose inputs are objects of named fields: checked, written as a task file,
read back with its fields."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine.service.requests import RequestError, parse_create, write_inline_task
from engine.task import load_task


def body(examples: list[dict[str, object]]) -> bytes:
    task = {"name": "tickets", "examples": examples, "human_instruction": "Classify it."}
    return orjson.dumps({"config": {"endpoint": "sim"}, "task": task})


def test_an_inline_task_of_named_fields_is_written_and_read_back(tmp_path: Path) -> None:
    examples = [
        {"input": {"title": f"t{i}", "body": f"b{i}"}, "output": ["x", "y"] if i else "z"}
        for i in range(6)
    ]
    _, task = parse_create(body(examples))
    assert task is not None
    path = write_inline_task(task, tmp_path)
    loaded = load_task(str(path))
    assert loaded.fields == ("title", "body") and loaded.name == "tickets"
    assert loaded.human_instruction == "Classify it."
    assert loaded.examples[2].input == "Title: t2\nBody: b2"
    assert loaded.examples[2].outputs == ("x", "y")
    assert write_inline_task(task, tmp_path) == path  # the same task: the same file


@pytest.mark.parametrize(
    ("examples", "field", "problem"),
    [
        ([{"input": {}, "output": "a"}], "task.examples[0].input", "length"),
        ([{"input": {" ": "x"}, "output": "a"}], "task.examples[0].input", "matching regex"),
        (
            [{"input": {"a": "1"}, "output": "a"}, {"input": "1", "output": "a"}],
            "task.examples",
            "the same way",
        ),
        (
            [{"input": {"a": "1"}, "output": "a"}, {"input": {"a": "1"}, "output": "b"}],
            "task.examples[1]",
            "other outputs",
        ),
    ],
)
def test_bad_inline_fields_name_the_field(
    examples: list[dict[str, object]], field: str, problem: str
) -> None:
    with pytest.raises(RequestError, match=problem) as raised:
        parse_create(body(examples))
    assert raised.value.field.startswith(field)


def test_an_inline_tasks_checks_become_the_studys_settings() -> None:
    examples = [{"input": {"q": f"{i}"}, "output": {"a": i}} for i in range(4)]
    raw = orjson.loads(body(examples))
    raw["task"]["checks"] = [{"kind": "json", "required": ["a"]}]
    settings, _ = parse_create(orjson.dumps(raw))
    assert settings["checks"] == [
        {"kind": "json", "required": ["a"], "schema": None, "compare": [], "weight": 1.0}
    ]
    raw["task"]["checks"] = [{"kind": "regex", "pattern": "("}]
    with pytest.raises(RequestError, match=r"task.checks\[0\]: pattern: not a regular") as raised:
        parse_create(orjson.dumps(raw))
    assert raised.value.field == "task.checks[0]"
