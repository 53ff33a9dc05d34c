"""Task files: JSON lines, a JSON array, CSV, a task file (one JSON object with its examples, name,
human instruction and metric), the instruction-induction JSON format and BIG-Bench `task.json`.

JSON lines and CSV are read as a stream (`engine.task.stream`): a large file is read through
once and only where each example starts is kept, so loading it takes memory for the examples a
study keeps, not for the file. JSON documents are parsed whole. An input or an output longer
than `MAX_TEXT_CHARS` is refused with its line (or key). The input and output are the ``input`` and ``output`` keys (columns) unless
`input_field` and `output_field` name others (``country,capital``). An input that is an object,
or several input keys (``title,body``), is an input of named fields (`engine.task.fields`);
every example of a file gives its input the same way. Every error is a
`DatasetError` that names the file and the line or example key, and says what was expected. In
the user's own formats, one input with two different outputs is refused naming both lines; in the
published benchmarks (instruction induction, BIG-Bench) it is a warning, as is an exact repeat
anywhere (`Task.warnings`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import DatasetError, setting, setting_values
from engine.nesting import json_depth_problem
from engine.task.benchmarks import (
    INSTRUCTION_INDUCTION_METRICS,
    beside,
    load_bigbench,
    load_instruction_induction,
    outputs_of,
    read_annotations,
)
from engine.task.duplicates import check_duplicates, check_duplicates_by_hash
from engine.task.fields import field_names, input_of, rendered
from engine.task.reading import MAX_TEXT_CHARS, first_lines, parse_json, read_text
from engine.task.stream import (
    ExampleFile,
    Scan,
    csv_reader,
    line_reader,
    same_kind,
    scan_csv,
    scan_lines,
)
from engine.task.types import METRICS, Example, FieldValues, Task

__all__ = [
    "FORMATS",
    "INSTRUCTION_INDUCTION_METRICS",
    "Fields",
    "detect_format",
    "load_file",
    "read_annotations",
]

FORMATS = ("jsonl", "json", "csv", "task", "instruction-induction", "bigbench")
#: the formats whose examples are records with named fields (`Fields` apply to them)
RECORD_FORMATS = frozenset({"jsonl", "json", "csv", "task"})
#: the keys of a task file (format "task": a JSON object with its examples and what goes with
#: them); its examples are records as in JSON lines
TASK_KEYS = ("name", "description", "human_instruction", "metric", "checks", "examples")


@dataclass(frozen=True, slots=True)
class Fields:
    """The keys (or CSV columns) that hold an example's input and its output. Several input
    keys, comma-separated (``title,body``), make an input of named fields."""

    input: str = "input"
    output: str = "output"

    @property
    def inputs(self) -> tuple[str, ...]:
        """The input's keys: one, or the several of an input of named fields."""
        names = tuple(name.strip() for name in self.input.split(",") if name.strip())
        return names or (self.input,)


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
        if json_depth_problem(first) is not None:
            return "document"  # parsed whole, which refuses it with its line
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
        return "task" if _is_task_document(document) else "bigbench"
    if isinstance(document, dict) and "input" in document:
        return "jsonl"
    raise DatasetError(
        f"{path}: a JSON object that is no known task format; expected a list of examples, an "
        "'examples' object (instruction induction), an 'examples' list (BIG-Bench) or JSON lines"
    )


def _is_task_document(document: dict[str, Any]) -> bool:
    """A task file of ours, told apart from a BIG-Bench task by its keys: its own ("human_
    instruction"), or examples whose answer is an ``output`` (BIG-Bench's is a ``target``)."""
    examples = document["examples"]
    first = examples[0] if examples else None
    own = "human_instruction" in document or "checks" in document
    return own or (isinstance(first, dict) and "output" in first and "target" not in first)


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
    return (
        f"; name the input and the output with {given} (several input names, comma-separated, "
        "make an input of named fields: title,body)"
    )


def _input(record: dict[str, Any], where: str, fields: Fields) -> tuple[str, FieldValues | None]:
    """An example's input: one key's value (text, or an object of named fields), or the
    several keys `fields` names as its fields."""
    names = fields.inputs
    if len(names) == 1:
        return input_of(record[names[0]], where)
    return input_of({name: record[name] for name in names}, where)


def _example(record: Any, where: str, key: str, fields: Fields) -> Example:
    """One example from a JSON object of a JSON lines, JSON array or task file."""
    if not isinstance(record, dict):
        raise DatasetError(
            f"{where}: expected a JSON object with {fields.input!r} and {fields.output!r}"
        )
    for field in (*fields.inputs, fields.output):
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
    text, named = _input(record, where, fields)
    example = Example(text, outputs=outputs, choices=choices, key=key, fields=named)
    return checked_size(example, where)


def checked_size(example: Example, where: str) -> Example:
    """`example`, unless its input or an output is longer than `MAX_TEXT_CHARS`."""
    for what, text in (("input", example.input), *(("output", o) for o in example.outputs)):
        if len(text) > MAX_TEXT_CHARS:
            raise DatasetError(
                f"{where}: the {what} is {len(text):,} characters; an example holds at most "
                f"{MAX_TEXT_CHARS:,} in its input and in each output"
            )
    return example


def _load_jsonl(path: Path, fields: Fields, scan: Scan) -> ExampleFile:
    source, target = fields.input, fields.output

    def parse(line: str, number: int) -> Example:
        record = parse_json(path, line, line=number)
        if type(record) is dict and "choices" not in record:  # the common line, at once
            text, output = record.get(source), record.get(target)
            if (
                type(text) is str
                and type(output) is str
                and output.strip()
                and len(text) <= MAX_TEXT_CHARS
                and len(output) <= MAX_TEXT_CHARS
            ):
                return Example(text, (output,), key=f"line {number}")
        return _example(record, f"{path}: line {number}", f"line {number}", fields)

    scan_lines(path, parse, scan)
    return ExampleFile(path, scan, line_reader(parse))


def _load_json_array(path: Path, document: Any, fields: Fields) -> Iterator[Example]:
    if not isinstance(document, list):
        raise DatasetError(f"{path}: expected a JSON array of examples")
    for index, record in enumerate(document):
        yield _example(record, f"{path}: [{index}]", f"[{index}]", fields)


def _load_csv(path: Path, fields: Fields, scan: Scan) -> ExampleFile:
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"

    names = fields.inputs

    def check(header: list[str]) -> None:
        for field in (*names, fields.output):
            if field not in header:
                raise DatasetError(
                    f"{path}: line 1: missing column {field!r}; the header has "
                    f"{', '.join(header)}{_naming_hint(list(header))}"
                )

    def parse(row: dict[str, Any], number: int) -> Example:
        where = f"{path}: line {number}"
        named = tuple((name, row.get(name) or "") for name in names) if len(names) > 1 else None
        example = Example(
            input=rendered(named) if named else row.get(names[0]) or "",
            outputs=outputs_of(row.get(fields.output) or "", where),
            key=f"line {number}",
            fields=named,
        )
        return checked_size(example, where)

    header = scan_csv(path, dialect, parse, scan, check)
    return ExampleFile(path, scan, csv_reader(header, dialect, parse))


@dataclass(slots=True)
class _Loaded:
    examples: Sequence[Example]
    metric: str = "exact_match"
    name: str = ""
    human: str | None = None
    description: str | None = None
    test: tuple[Example, ...] | None = None
    scan: Scan | None = None  # a file read as a stream: its hashes, for the duplicate check
    checks: tuple[Any, ...] | None = None  # a task file's, as written


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


def _text(document: dict[str, Any], key: str, path: Path) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DatasetError(f"{path}: {key!r} must be a string, not {type(value).__name__}")
    return value.strip() or None


def _load_task_document(path: Path, document: Any, fields: Fields) -> _Loaded:
    """A task file: its examples (records as in JSON lines), name, description, human
    instruction, metric and checks (kept as written: the settings decode them)."""
    if not isinstance(document, dict) or not isinstance(document.get("examples"), list):
        raise DatasetError(f"{path}: expected a task object with an 'examples' list")
    for key in document:
        if key not in TASK_KEYS:
            raise DatasetError(
                f"{path}: unknown key {key!r}; a task file holds {', '.join(TASK_KEYS)}"
            )
    metric = _text(document, "metric", path) or "exact_match"
    if metric not in METRICS:
        raise DatasetError(
            f"{path}: 'metric': unknown metric {metric!r}; one of {', '.join(METRICS)}"
        )
    examples = [
        _example(record, f"{path}: examples[{index}]", f"examples[{index}]", fields)
        for index, record in enumerate(document["examples"])
    ]
    if any(example.choices for example in examples):
        metric = "multiple_choice" if "metric" not in document else metric
    checks = document.get("checks")
    if checks is not None and (not isinstance(checks, list) or not checks):
        raise DatasetError(
            f"{path}: 'checks' must be a list of checks, each an object with its kind"
        )
    return _Loaded(
        examples,
        metric,
        name=_text(document, "name", path) or path.stem,
        human=_text(document, "human_instruction", path),
        description=_text(document, "description", path),
        checks=tuple(checks) if checks is not None else None,
    )


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


def _load(
    path: Path, fmt: str | None, fields: Fields, human: str | None, own_human: bool
) -> tuple[str, _Loaded]:
    """The format and what the file holds (`human`: the annotations given for it;
    `own_human`: read the annotations beside an instruction-induction file)."""
    document: Any = None
    if fmt is None:
        fmt = _guess(path, *first_lines(path))
        if fmt == "document":
            document = parse_json(path, read_text(path))
            fmt = _document_format(path, document)
    if fmt in ("jsonl", "csv"):  # read as a stream: see engine.task.stream
        scan = Scan()
        scan.start(path.stem, human, str(path))
        load = _load_jsonl if fmt == "jsonl" else _load_csv
        loaded = _Loaded(load(path, fields, scan), name=path.stem, human=human)
        if scan.choices:
            loaded.metric = "multiple_choice"
        loaded.scan = scan
        return fmt, loaded
    if document is None:
        document = parse_json(path, read_text(path))
    if fmt == "json":
        return fmt, _Loaded(list(_load_json_array(path, document, fields)), name=path.stem)
    if fmt == "task":
        return fmt, _load_task_document(path, document, fields)
    if fmt == "instruction-induction":
        return fmt, _load_instruction_induction_file(path, document, own_human)
    return fmt, _load_bigbench_file(path, document)


def _duplicates(path: Path, loaded: _Loaded, strict: bool) -> tuple[str, ...]:
    """The duplicate check, from the hashes of a file read as a stream; each example of a
    document (read whole) is checked for its size first."""
    scan = loaded.scan
    if scan is not None:
        return check_duplicates_by_hash(
            path, loaded.examples, scan.inputs, scan.outputs, strict=strict
        )
    for example in loaded.examples:
        checked_size(example, f"{path}: {example.key}")
    for example in loaded.test or ():
        checked_size(example, f"{path}: its test file: {example.key}")
    return check_duplicates(path, loaded.examples, strict=strict)


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
    human = read_annotations(Path(annotations)) if annotations is not None else None
    fmt, loaded = _load(path, format, fields or Fields(), human, annotations is None)
    if fields is not None and fields != Fields() and fmt not in RECORD_FORMATS:
        raise DatasetError(
            f"{path}: {setting('input_field')} and {setting('output_field')} apply to JSON "
            f"lines, JSON and CSV files, not to the {fmt} format"
        )
    examples = loaded.examples
    if fmt == "json" and any(e.choices for e in examples):
        loaded.metric = "multiple_choice"
    if annotations is not None:
        loaded.human = human
    if not examples:
        raise DatasetError(f"{path}: no examples; expected at least one example with an output")
    warnings = _duplicates(path, loaded, strict=fmt in RECORD_FORMATS)
    named = tuple(loaded.scan.fields) if loaded.scan is not None else _field_names(path, examples)
    return Task(
        name=loaded.name,
        examples=examples if isinstance(examples, ExampleFile) else tuple(examples),
        metric=loaded.metric,
        human_instruction=loaded.human,
        description=loaded.description,
        test_examples=loaded.test,
        source=str(path),
        warnings=warnings,
        fields=named,
        checks=loaded.checks,
    )


def _field_names(path: Path, examples: Sequence[Example]) -> tuple[str, ...]:
    """The field names of examples read whole, which give their inputs all one way."""
    first = examples[0]
    for example in examples:
        if (example.fields is None) != (first.fields is None):
            raise DatasetError(
                same_kind(str(path), example.key, first.fields is not None, first.key)
            )
    return field_names(examples)
