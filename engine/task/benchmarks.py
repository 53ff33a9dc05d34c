"""The benchmark formats: instruction induction (Honovich et al. 2022, as shipped by the APE
repository, keirp/automatic_prompt_engineer, `experiments/data/instruction_induction`) and
BIG-Bench's JSON `task.json` (the google/BIG-bench repository's documentation, doc.md).

Each is read with the per-task quirks of APE's own loader (said where they are); every error is a
`DatasetError` naming the file and the example's key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import DatasetError
from engine.task.fields import text_of
from engine.task.reading import parse_json, read_text
from engine.task.types import Example

__all__ = [
    "INSTRUCTION_INDUCTION_METRICS",
    "beside",
    "load_bigbench",
    "load_instruction_induction",
    "outputs_of",
    "read_annotations",
]

#: The benchmark's own metric per instruction-induction task (exact match for the others).
INSTRUCTION_INDUCTION_METRICS = {
    "common_concept": "f1",
    "informal_to_formal": "f1",
    "orthography_starts_with": "exact_set",
    "taxonomy_animal": "exact_set",
    "synonyms": "contains",
}


def outputs_of(value: Any, where: str) -> tuple[str, ...]:
    """An example's accepted outputs: a string (or number), or a list of them; a JSON object (a
    structured answer) is one output, written as JSON."""
    if isinstance(value, str | int | float | dict) and not isinstance(value, bool):
        values: list[Any] = [value]
    elif isinstance(value, list):
        values = value
    else:
        raise DatasetError(
            f"{where}: 'output' must be a string, a JSON object or a list of them (several "
            "accepted outputs)"
        )
    texts = (text_of(v) if isinstance(v, dict | list) else str(v) for v in values)
    outputs = tuple(text for text in texts if text.strip())
    if not outputs:
        raise DatasetError(f"{where}: the example has no output")
    return outputs


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
        return Example(", ".join(map(str, record["items"])), outputs_of(accepted, where), key=key)
    for field in ("input", "output"):
        if field not in record:
            raise DatasetError(f"{where}: missing field {field!r}")
    outputs = outputs_of(record["output"], where)
    if task == "rhymes" and record.get("other_rhymes"):
        # Every word of the rhyme group is accepted except the input itself: the files list it
        # among `other_rhymes` (APE accepts it, so "repeat the word" would score 100 %).
        word = _word_key(str(record["input"]))
        group = outputs_of(record["other_rhymes"], where)
        outputs = tuple(o for o in dict.fromkeys(outputs + group) if _word_key(o) != word)
        if not outputs:
            raise DatasetError(f"{where}: no rhyme other than the input word itself")
    elif task.startswith("translation") and record.get("possible_translations"):
        outputs = tuple(dict.fromkeys(outputs + outputs_of(record["possible_translations"], where)))
    elif task == "sentence_similarity":
        # "4 - almost perfectly": the benchmark scores the number alone, so both are accepted
        number = outputs[0].split("-")[0].strip()
        outputs = tuple(dict.fromkeys((*outputs, number))) if number else outputs
    # word_in_context: `possible_outputs` ("no", "false", ...) is ignored, as APE scores against
    # `output` only.
    return Example(str(record["input"]), outputs, key=key)


def load_instruction_induction(path: Path, document: Any) -> list[Example]:
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
    document = parse_json(path, read_text(path))
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


def beside(path: Path, folder: str) -> Path | None:
    """`../<folder>/<name>` beside an `induce/` (or `execute/`) file, when it exists."""
    if path.parent.name not in ("induce", "execute"):
        return None
    candidate = path.parent.parent / folder / path.name
    return candidate if candidate.is_file() else None


def load_bigbench(path: Path, document: Any) -> tuple[list[Example], str]:
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
                Example(text, outputs_of(record["target"], where), key=f"examples[{index}]")
            )
    return examples, "multiple_choice" if multiple_choice else "exact_match"


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False
