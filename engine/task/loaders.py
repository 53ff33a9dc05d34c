"""Task files: JSON lines, CSV, the instruction-induction JSON format and BIG-Bench `task.json`.

Every error is a `DatasetError` that names the file and the line or example key, and says what
was expected. References: the instruction-induction data (Honovich et al. 2022) as shipped by the
APE repository (keirp/automatic_prompt_engineer, `experiments/data/instruction_induction`), and
BIG-Bench's JSON task format (the google/BIG-bench repository's documentation, doc.md).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.errors import DatasetError
from engine.task.types import Example, Task

__all__ = [
    "FORMATS",
    "INSTRUCTION_INDUCTION_METRICS",
    "detect_format",
    "load_file",
    "read_annotations",
]

FORMATS = ("jsonl", "csv", "instruction-induction", "bigbench")

#: The benchmark's own metric per instruction-induction task (exact match for the others).
INSTRUCTION_INDUCTION_METRICS = {
    "common_concept": "f1",
    "informal_to_formal": "f1",
    "orthography_starts_with": "exact_set",
    "taxonomy_animal": "exact_set",
    "synonyms": "contains",
}


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such task file") from None
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error})") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read ({error.strerror})") from None
    if not text.strip():
        raise DatasetError(f"{path}: the file is empty; expected examples with input and output")
    return text


#: Presentation settings of BIG-Bench files that the engine does not read; a duplicate of one is
#: not an error (timedial's task.json has two), and the last one wins as in Python's json.
_IGNORED_DUPLICATES = frozenset(
    {
        "append_choices_to_input",
        "canary",
        "keywords",
        "preferred_score",
        "few_shot_example_separator",
    }
)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen and key not in _IGNORED_DUPLICATES:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def _duplicate_key_line(text: str, key: str) -> int | None:
    """The line where `key` repeats inside one JSON object (the slow path, run only on error)."""
    stack: list[set[str] | None] = []  # a set of keys per open object, None per open array
    expecting_key = False
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token == "{":
            stack.append(set())
            expecting_key = True
        elif token == "[":
            stack.append(None)
        elif token in ("}", "]"):
            if stack:
                stack.pop()
            expecting_key = False
        elif token == ",":
            expecting_key = bool(stack) and stack[-1] is not None
        elif token.startswith('"') and expecting_key and stack and stack[-1] is not None:
            expecting_key = False
            try:
                name = json.loads(token)
            except json.JSONDecodeError:
                return None
            keys = stack[-1]
            if name == key and name in keys:
                return text.count("\n", 0, match.start()) + 1
            keys.add(name)
    return None


def _parse_json(path: Path, text: str, line: int | None = None) -> Any:
    """Parse JSON; a syntax error or a repeated key in an object names the file and line."""
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as error:
        where = f"line {line}" if line is not None else f"line {error.lineno} column {error.colno}"
        raise DatasetError(f"{path}: {where}: not valid JSON ({error.msg})") from None
    except _DuplicateKey as duplicate:
        found = line if line is not None else _duplicate_key_line(text, duplicate.key)
        where = f"line {found}: " if found is not None else ""
        raise DatasetError(
            f"{path}: {where}duplicate key {duplicate.key!r} in a JSON object; "
            "the keys of an object must be unique (rename or remove one)"
        ) from None


def detect_format(path: Path, text: str) -> str:
    """Guess the format from the file name and content."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    head = text.lstrip()
    if head.startswith("{"):
        first_line = head.split("\n", 1)[0]
        try:
            json.loads(first_line)
            whole_first_line = True
        except json.JSONDecodeError:
            whole_first_line = False
        if whole_first_line and "\n" in head.strip():
            return "jsonl"
        document = _parse_json(path, text)
        if isinstance(document, dict) and isinstance(document.get("examples"), dict):
            return "instruction-induction"
        if isinstance(document, dict) and isinstance(document.get("examples"), list):
            return "bigbench"
        if isinstance(document, dict) and "input" in document:
            return "jsonl"
        raise DatasetError(
            f"{path}: a JSON object that is no known task format; expected an 'examples' object "
            "(instruction induction), an 'examples' list (BIG-Bench) or JSON lines"
        )
    if "," in head.split("\n", 1)[0]:
        return "csv"
    raise DatasetError(
        f"{path}: cannot tell the format; give --format as one of {', '.join(FORMATS)}"
    )


def _outputs(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        values: Iterable[Any] = [value]
    elif isinstance(value, list):
        values = value
    else:
        raise DatasetError(f"{where}: 'output' must be a string or a list of strings")
    outputs = tuple(str(v) for v in values if str(v).strip())
    if not outputs:
        raise DatasetError(f"{where}: the example has no output")
    return outputs


def _load_jsonl(path: Path, text: str) -> list[Example]:
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        record = _parse_json(path, line, line=number)
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected a JSON object with 'input' and 'output'")
        for field in ("input", "output"):
            if field not in record:
                raise DatasetError(f"{where}: missing field {field!r}")
        outputs = _outputs(record["output"], where)
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
        examples.append(
            Example(
                input=str(record["input"]), outputs=outputs, choices=choices, key=f"line {number}"
            )
        )
    return examples


def _load_csv(path: Path, text: str) -> list[Example]:
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    fields = reader.fieldnames or []
    for field in ("input", "output"):
        if field not in fields:
            raise DatasetError(
                f"{path}: line 1: missing column {field!r}; the header has {', '.join(fields)}"
            )
    examples = []
    for row in reader:
        where = f"{path}: line {reader.line_num}"
        output = row.get("output") or ""
        examples.append(
            Example(
                input=row.get("input") or "",
                outputs=_outputs(output, where),
                key=where.split(": ")[1],
            )
        )
    return examples


def _word_key(word: str) -> str:
    return word.strip().lower()


def _ii_example(task: str, key: str, record: dict[str, Any], where: str) -> Example:
    """One instruction-induction example, with the per-task quirks of APE's loader."""
    if task == "cause_and_effect":
        if "cause" not in record or "effect" not in record:
            raise DatasetError(f"{where}: missing field 'cause' or 'effect'")
        # APE shows the two sentences in a random order; we fix the order by the key's parity
        # so that a file always gives the same task.
        first, second = record["cause"], record["effect"]
        if int(key) % 2 if key.isdigit() else 0:
            first, second = second, first
        return Example(
            f"Sentence 1: {first} Sentence 2: {second}", (str(record["cause"]),), key=key
        )
    if task == "common_concept":
        if "items" not in record:
            raise DatasetError(f"{where}: missing field 'items'")
        accepted = record.get("all_common_concepts") or [record.get("concept", "")]
        # APE joins items[:-1] (it drops the last item); we keep every item.
        return Example(", ".join(map(str, record["items"])), _outputs(accepted, where), key=key)
    for field in ("input", "output"):
        if field not in record:
            raise DatasetError(f"{where}: missing field {field!r}")
    outputs = _outputs(record["output"], where)
    if task == "rhymes" and record.get("other_rhymes"):
        # Every word of the rhyme group is accepted except the input itself: the files list it
        # among `other_rhymes` (APE accepts it, so "repeat the word" would score 100 %).
        word = _word_key(str(record["input"]))
        group = _outputs(record["other_rhymes"], where)
        outputs = tuple(o for o in dict.fromkeys(outputs + group) if _word_key(o) != word)
        if not outputs:
            raise DatasetError(f"{where}: no rhyme other than the input word itself")
    elif task.startswith("translation") and record.get("possible_translations"):
        outputs = tuple(dict.fromkeys(outputs + _outputs(record["possible_translations"], where)))
    elif task == "sentence_similarity":
        # "4 - almost perfectly": the benchmark scores the number alone, so both are accepted
        number = outputs[0].split("-")[0].strip()
        outputs = tuple(dict.fromkeys((*outputs, number))) if number else outputs
    # word_in_context: `possible_outputs` ("no", "false", ...) is ignored, as APE scores against
    # `output` only.
    return Example(str(record["input"]), outputs, key=key)


def _load_instruction_induction(path: Path, document: Any) -> list[Example]:
    if not isinstance(document, dict) or not isinstance(document.get("examples"), dict):
        raise DatasetError(f"{path}: expected an object with an 'examples' object")
    task = path.stem
    examples = []
    for key, record in document["examples"].items():
        where = f"{path}: example {key!r}"
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected an object")
        examples.append(_ii_example(task, str(key), record, where))
    return examples


def read_annotations(path: Path) -> str:
    """The first human instruction of an annotations file (`{"annotations": [text, ...]}`)."""
    document = _parse_json(path, _read_text(path))
    annotations = document.get("annotations") if isinstance(document, dict) else None
    if (
        not isinstance(annotations, list)
        or not annotations
        or not isinstance(annotations[0], str)
        or not annotations[0].strip()
    ):
        raise DatasetError(
            f'{path}: expected an object {{"annotations": [instruction, ...]}} with at least '
            "one non-empty instruction"
        )
    return annotations[0].strip()


def _beside(path: Path, folder: str) -> Path | None:
    """`../<folder>/<name>` beside an `induce/` (or `execute/`) file, when it exists."""
    if path.parent.name not in ("induce", "execute"):
        return None
    candidate = path.parent.parent / folder / path.name
    return candidate if candidate.is_file() else None


def _load_bigbench(path: Path, document: Any) -> tuple[list[Example], str]:
    """BIG-Bench examples: `target` for exact_str_match, `target_scores` for multiple choice.

    As in BIG-Bench's JSON tasks, the choices are appended to the input (each after
    `choice_prefix`, default "\\n  choice: ") unless the task sets `append_choices_to_input`
    to false, so that a model that only sees the input can still name a choice.
    """
    if not isinstance(document, dict) or not isinstance(document.get("examples"), list):
        raise DatasetError(f"{path}: expected a BIG-Bench task with an 'examples' list")
    metrics = document.get("metrics") or []
    multiple_choice = "multiple_choice_grade" in metrics and "exact_str_match" not in metrics
    append_choices = document.get("append_choices_to_input", True) is not False
    choice_prefix = str(document.get("choice_prefix", "\n  choice: "))
    examples = []
    for index, record in enumerate(document["examples"]):
        where = f"{path}: examples[{index}]"
        if not isinstance(record, dict) or "input" not in record:
            raise DatasetError(f"{where}: missing field 'input'")
        text = str(record["input"])
        if multiple_choice:
            scores = record.get("target_scores")
            if not isinstance(scores, dict) or not scores:
                raise DatasetError(
                    f"{where}: missing field 'target_scores' (a multiple-choice example needs "
                    "an object from each choice to its score)"
                )
            correct = [choice for choice, value in scores.items() if _positive(value)]
            if not correct:
                raise DatasetError(
                    f"{where}: no choice in 'target_scores' is correct (expected one score > 0)"
                )
            choices = tuple(str(c) for c in scores)
            if append_choices:
                text += "".join(choice_prefix + choice for choice in choices)
            examples.append(Example(text, tuple(correct), choices, key=f"examples[{index}]"))
        else:
            if "target" not in record:
                raise DatasetError(f"{where}: missing field 'target'")
            examples.append(
                Example(text, _outputs(record["target"], where), key=f"examples[{index}]")
            )
    return examples, "multiple_choice" if multiple_choice else "exact_match"


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def load_file(
    path: str | Path, *, format: str | None = None, annotations: str | Path | None = None
) -> Task:
    """Read a task file. `format` overrides the guess from the file name and content.

    `annotations` names a file of human instructions (`{"annotations": [...]}`) whose first entry
    becomes the human baseline; for an instruction-induction `induce/<task>.json` it is found as
    `../annotations/<task>.json` when not given, and `../execute/<task>.json` is the test pool.
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise DatasetError(f"{path}: unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    text = _read_text(path)
    fmt = format or detect_format(path, text)
    name = path.stem
    human = description = None
    test: tuple[Example, ...] | None = None
    metric = "exact_match"
    if fmt == "jsonl":
        examples = _load_jsonl(path, text)
        if any(e.choices for e in examples):
            metric = "multiple_choice"
    elif fmt == "csv":
        examples = _load_csv(path, text)
    elif fmt == "instruction-induction":
        examples = _load_instruction_induction(path, _parse_json(path, text))
        metric = INSTRUCTION_INDUCTION_METRICS.get(name, "exact_match")
        found = _beside(path, "annotations")
        human = read_annotations(found) if found is not None and annotations is None else None
        execute = _beside(path, "execute")
        if path.parent.name == "induce" and execute is not None:
            test = tuple(
                _load_instruction_induction(execute, _parse_json(execute, _read_text(execute)))
            )
    else:
        document = _parse_json(path, text)
        examples, metric = _load_bigbench(path, document)
        name = str(document.get("name") or path.parent.name)
        prefix = document.get("task_prefix")
        human = str(prefix).strip() or None if prefix else None
        description = str(document.get("description") or "").strip() or None
    if annotations is not None:
        human = read_annotations(Path(annotations))
    if not examples:
        raise DatasetError(f"{path}: no examples; expected at least one example with an output")
    return Task(
        name=name,
        examples=tuple(examples),
        metric=metric,
        human_instruction=human,
        description=description,
        test_examples=test,
        source=str(path),
    )
