"""Task files as they come from other tools: a UTF-8 byte-order mark is read, a byte that is
not UTF-8 is named by its line, one input with two different outputs is refused naming both
lines (an exact repeat is a warning), a JSON array of examples is read as such, other column
names map to input and output, and a file is read as a stream: loading it never holds more
than its examples and a little more."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from engine.cli import build_parser
from engine.cli.run import config_from_args
from engine.errors import DatasetError
from engine.task import load_task


def examples(count: int) -> list[dict[str, str]]:
    return [{"input": f"{n} and {n + 1}", "output": str(n + 1)} for n in range(count)]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_a_byte_order_mark_is_read(tmp_path: Path, suffix: str) -> None:
    rows = examples(5)
    if suffix == ".jsonl":
        text = "".join(json.dumps(row) + "\n" for row in rows)
    elif suffix == ".csv":
        text = "input,output\n" + "".join(f"{r['input']},{r['output']}\n" for r in rows)
    else:
        text = json.dumps(rows)
    path = tmp_path / f"task{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # as Excel and Notepad save UTF-8
    task = load_task(str(path))
    assert [e.input for e in task.examples] == [r["input"] for r in rows]
    assert "\ufeff" not in task.examples[0].input


def test_a_byte_that_is_not_utf8_is_named_by_its_line(tmp_path: Path) -> None:
    lines = [json.dumps(row).encode() for row in examples(9)]
    lines[6] = b'{"input": "caf\xe9", "output": "x"}'  # Latin-1, not UTF-8
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DatasetError, match=r"latin\.jsonl: line 7, column 15: byte 0xe9") as caught:
        load_task(str(path))
    assert "\ufeff" not in str(caught.value) and "position" not in str(caught.value)


def test_one_input_with_two_outputs_is_refused_naming_both_lines(tmp_path: Path) -> None:
    rows = examples(5) + [{"input": "capital of France", "output": f"guess {n}"} for n in range(40)]
    path = tmp_path / "conflict.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DatasetError, match=r"line 7 and line 6 have the same input") as caught:
        load_task(str(path))
    assert "38 more" in str(caught.value)
    csv = tmp_path / "conflict.csv"
    csv.write_text("input,output\na,1\nb,2\na,3\n")
    with pytest.raises(DatasetError, match=r"line 4 and line 2 have the same input 'a'"):
        load_task(str(csv))


def test_an_exact_repeat_is_a_warning(tmp_path: Path) -> None:
    rows = examples(5)
    path = tmp_path / "repeat.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in [*rows, rows[1], rows[1]]))
    task = load_task(str(path))
    assert len(task.examples) == 7
    (warning,) = task.warnings
    assert "line 6 repeats line 2" in warning and "1 more" in warning


def test_a_json_array_is_read_as_examples(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_text(json.dumps(examples(6), indent=2))
    task = load_task(str(path))
    assert [e.outputs for e in task.examples][:2] == [("1",), ("2",)]
    assert task.examples[3].key == "[3]"
    path.write_text(json.dumps([*examples(2), {"input": "x"}]))
    with pytest.raises(DatasetError, match=r"array\.json: \[2\]: missing field 'output'"):
        load_task(str(path))


def test_other_names_map_to_input_and_output(tmp_path: Path) -> None:
    from engine.task import Fields

    csv = tmp_path / "capitals.csv"
    csv.write_text("country,capital\nFrance,Paris\nJapan,Tokyo\nPeru,Lima\n")
    task = load_task(str(csv), fields=Fields("country", "capital"))
    assert (task.examples[0].input, task.examples[0].outputs) == ("France", ("Paris",))
    lines = tmp_path / "capitals.jsonl"
    lines.write_text('{"q": "France", "a": "Paris"}\n{"q": "Peru", "a": "Lima"}\n')
    assert load_task(str(lines), fields=Fields("q", "a")).examples[1].outputs == ("Lima",)
    with pytest.raises(DatasetError, match="missing column 'input'"):
        load_task(str(csv))
    parser = build_parser()
    args = ["run", "--task", str(csv), "--input-field", "country", "--output-field", "capital"]
    config = config_from_args(parser.parse_args(args))
    assert (config.task.input_field, config.task.output_field) == ("country", "capital")


def test_a_file_is_read_as_a_stream(tmp_path: Path) -> None:
    """Loading holds the examples and little more: the peak of memory allocated is within
    30 % of what the examples keep (reading the text whole, then its lines, doubled it)."""
    path = tmp_path / "large.jsonl"
    filler = "lorem ipsum dolor sit amet " * 4
    with path.open("w") as file:
        for n in range(40_000):
            file.write(json.dumps({"input": f"{n} {filler}", "output": str(n)}) + "\n")
    tracemalloc.start()
    try:
        task = load_task(str(path))
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(task.examples) == 40_000
    assert peak <= 1.3 * kept, (peak, kept)
