"""Task files: JSON lines, a JSON array, CSV, the instruction-induction JSON format and BIG-Bench
`task.json`.

JSON lines and CSV are read as a stream (`engine.task.reading`), so a large file is held once, as
its examples. The input and output are the ``input`` and ``output`` keys (columns) unless
`input_field` and `output_field` name others (``country,capital``). Every error is a
`DatasetError` that names the file and the line or example key, and says what was expected. In
the user's own formats, one input with two different outputs is refused naming both lines; in the
published benchmarks (instruction induction, BIG-Bench) it is a warning, as is an exact repeat
anywhere (`Task.warnings`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import DatasetError, setting, setting_values
from engine.task.benchmarks import (
    INSTRUCTION_INDUCTION_METRICS,
    beside,
    load_bigbench,
    load_instruction_induction,
    outputs_of,
    read_annotations,
)
from engine.task.duplicates import check_duplicates
from engine.task.reading import first_lines, iter_lines, parse_json, read_text
from engine.task.types import Example, Task

__all__ = [
    "FORMATS",
    "INSTRUCTION_INDUCTION_METRICS",
    "Fields",
    "detect_format",
    "load_file",
    "read_annotations",
]

FORMATS = ("jsonl", "json", "csv", "instruction-induction", "bigbench")
#: the formats whose examples are records with named fields (`Fields` apply to them)
RECORD_FORMATS = frozenset({"jsonl", "json", "csv"})


@dataclass(frozen=True, slots=True)
class Fields:
    """The keys (or CSV columns) that hold an example's input and its output."""

    input: str = "input"
    output: str = "output"


def _guess(path: Path, first: str, more: bool) -> str:
    """ "csv", "jsonl", or "document" (a JSON document, told apart once parsed)."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    first = first.lstrip("\ufeff").strip()
    if first.startswith("["):
        return "document"
    if first.startswith("{"):
        try:
            json.loads(first)
        except json.JSONDecodeError:
            return "document"
        return "jsonl" if more else "document"
    if "," in first:
        return "csv"
    raise DatasetError(
        f"{path}: cannot tell the format; give {setting('task_format')} as one of "
        f"{', '.join(FORMATS)}"
    )


def _document_format(path: Path, document: Any) -> str:
    if isinstance(document, list):
        return "json"
    if isinstance(document, dict) and isinstance(document.get("examples"), dict):
        return "instruction-induction"
    if isinstance(document, dict) and isinstance(document.get("examples"), list):
        return "bigbench"
    if isinstance(document, dict) and "input" in document:
        return "jsonl"
    raise DatasetError(
        f"{path}: a JSON object that is no known task format; expected a list of examples, an "
        "'examples' object (instruction induction), an 'examples' list (BIG-Bench) or JSON lines"
    )


def detect_format(path: Path, text: str) -> str:
    """Guess the format from the file name and content (the whole text, or its start)."""
    lines = [line for line in text.lstrip("\ufeff").split("\n") if line.strip()]
    if not lines:
        raise DatasetError(f"{path}: the file is empty; expected examples with input and output")
    kind = _guess(path, lines[0], len(lines) > 1)
    return _document_format(path, parse_json(path, text)) if kind == "document" else kind


def _naming_hint(names: list[str]) -> str:
    """How to name the input and output columns (keys) of a file that has others."""
    if len(names) == 2:
        given = setting_values(("input_field", names[0]), ("output_field", names[1]))
        return f"; if {names[0]!r} is the input and {names[1]!r} the output, give {given}"
    given = setting_values(("input_field", "NAME"), ("output_field", "NAME"))
    return f"; name the input and the output with {given}"


def _example(record: Any, where: str, key: str, fields: Fields) -> Example:
    """One example from a JSON object of a JSON lines or JSON array file."""
    if not isinstance(record, dict):
        raise DatasetError(
            f"{where}: expected a JSON object with {fields.input!r} and {fields.output!r}"
        )
    for field in (fields.input, fields.output):
        if field not in record:
            raise DatasetError(f"{where}: missing field {field!r}{_naming_hint(list(record))}")
    outputs = outputs_of(record[fields.output], where)
    choices = record.get("choices")
    if choices is not None:
        if not isinstance(choices, list) or not choices:
            raise DatasetError(f"{where}: 'choices' must be a non-empty list of strings")
        choices = tuple(str(c) for c in choices)
        missing = [o for o in outputs if o not in choices]
        if missing:
            raise DatasetError(
                f"{where}: output {missing[0]!r} is not one of the 'choices' {list(choices)}"
            )
    return Example(input=str(record[fields.input]), outputs=outputs, choices=choices, key=key)


def _load_jsonl(path: Path, fields: Fields) -> Iterator[Example]:
    for number, line in iter_lines(path):
        if line.strip():
            record = parse_json(path, line, line=number)
            yield _example(record, f"{path}: line {number}", f"line {number}", fields)


def _load_json_array(path: Path, document: Any, fields: Fields) -> Iterator[Example]:
    if not isinstance(document, list):
        raise DatasetError(f"{path}: expected a JSON array of examples")
    for index, record in enumerate(document):
        yield _example(record, f"{path}: [{index}]", f"[{index}]", fields)


def _load_csv(path: Path, fields: Fields) -> Iterator[Example]:
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    reader = csv.DictReader((line for _, line in iter_lines(path)), dialect=dialect)
    try:
        header = reader.fieldnames or []
        for field in (fields.input, fields.output):
            if field not in header:
                raise DatasetError(
                    f"{path}: line 1: missing column {field!r}; the header has "
                    f"{', '.join(header)}{_naming_hint(list(header))}"
                )
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            yield Example(
                input=row.get(fields.input) or "",
                outputs=outputs_of(row.get(fields.output) or "", where),
                key=f"line {reader.line_num}",
            )
    except csv.Error as error:
        raise DatasetError(f"{path}: line {reader.line_num}: not valid CSV ({error})") from None


@dataclass(slots=True)
class _Loaded:
    examples: list[Example]
    metric: str = "exact_match"
    name: str = ""
    human: str | None = None
    description: str | None = None
    test: tuple[Example, ...] | None = None


def _load_instruction_induction_file(path: Path, document: Any, own_human: bool) -> _Loaded:
    loaded = _Loaded(load_instruction_induction(path, document), name=path.stem)
    loaded.metric = INSTRUCTION_INDUCTION_METRICS.get(path.stem, "exact_match")
    found = beside(path, "annotations") if own_human else None
    loaded.human = read_annotations(found) if found is not None else None
    execute = beside(path, "execute")
    if path.parent.name == "induce" and execute is not None:
        document = parse_json(execute, read_text(execute))
        loaded.test = tuple(load_instruction_induction(execute, document))
    return loaded


def _load_bigbench_file(path: Path, document: Any) -> _Loaded:
    examples, metric = load_bigbench(path, document)
    prefix = document.get("task_prefix")
    return _Loaded(
        examples,
        metric,
        name=str(document.get("name") or path.parent.name),
        human=str(prefix).strip() or None if prefix else None,
        description=str(document.get("description") or "").strip() or None,
    )


def _load(path: Path, fmt: str | None, fields: Fields, own_human: bool) -> tuple[str, _Loaded]:
    """The format and what the file holds (`own_human`: read the annotations beside an
    instruction-induction file)."""
    document: Any = None
    if fmt is None:
        fmt = _guess(path, *first_lines(path))
        if fmt == "document":
            document = parse_json(path, read_text(path))
            fmt = _document_format(path, document)
    if fmt == "jsonl":
        return fmt, _Loaded(list(_load_jsonl(path, fields)), name=path.stem)
    if fmt == "csv":
        return fmt, _Loaded(list(_load_csv(path, fields)), name=path.stem)
    if document is None:
        document = parse_json(path, read_text(path))
    if fmt == "json":
        return fmt, _Loaded(list(_load_json_array(path, document, fields)), name=path.stem)
    if fmt == "instruction-induction":
        return fmt, _load_instruction_induction_file(path, document, own_human)
    return fmt, _load_bigbench_file(path, document)


def load_file(
    path: str | Path,
    *,
    format: str | None = None,
    annotations: str | Path | None = None,
    fields: Fields | None = None,
) -> Task:
    """Read a task file. `format` overrides the guess from the file name and content; `fields`
    names the input and output keys of a JSON lines, JSON or CSV file.

    `annotations` names a file of human instructions (`{"annotations": [...]}`) whose first entry
    becomes the human baseline; for an instruction-induction `induce/<task>.json` it is found as
    `../annotations/<task>.json` when not given, and `../execute/<task>.json` is the test pool.
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise DatasetError(f"{path}: unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    fmt, loaded = _load(path, format, fields or Fields(), annotations is None)
    if fields is not None and fields != Fields() and fmt not in RECORD_FORMATS:
        raise DatasetError(
            f"{path}: {setting('input_field')} and {setting('output_field')} apply to JSON "
            f"lines, JSON and CSV files, not to the {fmt} format"
        )
    examples = loaded.examples
    if fmt in ("jsonl", "json") and any(e.choices for e in examples):
        loaded.metric = "multiple_choice"
    if annotations is not None:
        loaded.human = read_annotations(Path(annotations))
    if not examples:
        raise DatasetError(f"{path}: no examples; expected at least one example with an output")
    warnings = check_duplicates(path, examples, strict=fmt in RECORD_FORMATS)
    return Task(
        name=loaded.name,
        examples=tuple(examples),
        metric=loaded.metric,
        human_instruction=loaded.human,
        description=loaded.description,
        test_examples=loaded.test,
        source=str(path),
        warnings=warnings,
    )
