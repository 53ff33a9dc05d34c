"""Task files as they come from other tools: a UTF-8 byte-order mark is read, a byte that is
not UTF-8 is named by its line, one input with two different outputs is refused naming both
lines (an exact repeat is a warning), a JSON array of examples is read as such, other column
names map to input and output, and a file is read as a stream: loading it never holds more
than its examples and a little more."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import build_parser
from engine.cli.run import config_from_args
from engine.errors import DatasetError
from engine.task import load_task, split_task


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


def write_lines(path: Path, count: int, filler: str = "lorem ipsum dolor sit amet " * 4) -> None:
    with path.open("w") as file:
        for n in range(count):
            file.write(json.dumps({"input": f"{n} {filler}", "output": str(n)}) + "\n")


_PEAK = """
import resource, sys
from engine.task import load_task, split_task
splits = split_task(load_task(sys.argv[1]), seed=3)
assert len(splits.demo) + len(splits.scoring) + len(splits.test) == 350
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_kb(path: Path) -> int:
    """The peak resident memory (KB) of a process that loads the task and makes the pools."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    return int(done.stdout.strip())


def test_a_file_is_read_as_a_stream(tmp_path: Path) -> None:
    """Loading a file and splitting it into a study's pools holds where each example starts
    in the file and a hash of it, never the examples' text: with lines of 300 bytes, a file
    four times as long (45 MB more) takes at most 50 bytes more memory per extra example."""
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    filler = "lorem ipsum dolor sit amet " * 10
    write_lines(small, 50_000, filler)
    write_lines(large, 200_000, filler)
    extra = large.stat().st_size - small.stat().st_size
    assert extra > 150_000 * 290
    grown = (peak_kb(large) - peak_kb(small)) * 1024
    assert grown <= 50 * 150_000, f"{grown / 1e6:.1f} MB more for {extra / 1e6:.0f} MB more file"


def test_a_file_read_as_a_stream_gives_the_pools_and_fingerprint_it_gave_whole(
    tmp_path: Path,
) -> None:
    """The pools of a seed and the fingerprint (which journals keep) are those of the same
    examples held in memory, as the loader read them before it streamed."""
    import orjson

    from engine.study.journal import task_fingerprint
    from engine.task import Example, Task

    path = tmp_path / "same.jsonl"
    rows = [{"input": f"{n} \u00e9\n\t{n % 7}", "output": [str(n), "x"]} for n in range(3000)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    streamed = load_task(str(path))
    whole = Task(
        name="same",
        examples=tuple(
            Example(r["input"], tuple(r["output"]), key=f"line {n}") for n, r in enumerate(rows, 1)
        ),
    )
    for seed in (0, 1, 17):
        assert split_task(streamed, seed=seed, scoring_size=500) == split_task(
            whole, seed=seed, scoring_size=500
        )
    digest = hashlib.sha256(orjson.dumps([whole.name, whole.metric, whole.human_instruction]))
    for example in whole.examples:  # the fingerprint as journals written before computed it
        digest.update(orjson.dumps([example.input, list(example.outputs)]))
    assert task_fingerprint(streamed) == task_fingerprint(whole) == digest.hexdigest()[:16]
    for metric in ("f1", "contains"):  # a metric given with --metric: hashed as it was read
        other = dataclasses.replace(streamed, metric=metric)
        assert task_fingerprint(other) == task_fingerprint(
            dataclasses.replace(whole, metric=metric)
        )


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_an_input_over_the_size_limit_is_refused_with_its_line(tmp_path: Path, suffix: str) -> None:
    """A single input of 50 MB (the issue's) is refused naming its line; so is one just over
    the limit of an example's text."""
    from engine.task.reading import MAX_TEXT_CHARS

    rows = examples(4)
    for size, message in (
        (50_000_000, "line 4: longer than"),
        (MAX_TEXT_CHARS + 1, "line 4: the input is"),
    ):
        path = tmp_path / f"big{suffix}"
        if suffix == ".jsonl":
            lines = [json.dumps(row) for row in rows]
            lines.insert(3, json.dumps({"input": "x" * size, "output": "y"}))
        else:
            lines = ["input,output", *(f"{r['input']},{r['output']}" for r in rows)]
            lines.insert(3, "x" * size + ",y")
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(DatasetError, match=message) as caught:
            load_task(str(path))
        assert str(path) in str(caught.value)


def test_a_file_changed_after_it_was_read_is_refused_not_read_at_the_wrong_places(
    tmp_path: Path,
) -> None:
    path = tmp_path / "task.csv"
    path.write_text("input,output\n" + "".join(f"q{n},a{n}\n" for n in range(50)))
    task = load_task(str(path))
    assert task.examples[-1].input == "q49" and task.examples[3:5][1].key == "line 6"
    assert [e.input for e in task.examples][:3] == ["q0", "q1", "q2"]
    path.write_text("input,output\n" + "".join(f"other{n},b{n}\n" for n in range(60)))
    with pytest.raises(DatasetError, match="changed since it was read"):
        split_task(task, seed=0)
