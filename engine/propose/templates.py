"""The prompt templates as data: APE's forward, insert (reverse), variant, demo and scoring, and
the reflection and merge templates of variants that learn from the answers.

Zhou et al. (ICLR 2023), section 3.1 and appendix: the *forward* template shows the demos and
lets the model continue "The instruction was" (completions) or asks for the instruction alone
(chat); the *insert* template puts the instruction slot before the demos and lets a model that
fills in the middle (completions ``suffix``) write it; the *variant* template of iterative APE
asks for a rewording of a leader. The *reflect* template shows a parent's instruction with some
of its answers (wrong ones, then right ones for contrast) and asks for a diagnosis and a revised
instruction (ProTeGi's textual gradient, Pryzant et al. 2023; GEPA's reflection, Agrawal et al.
2025); the *merge* template shows two parents with the examples only each gets right and asks
for one instruction that keeps both. Each template is a Python format string with named
placeholders (``{demos}``, ``{instruction}``, ``{input}``, ``{output}``, ...; write literal braces as
``{{`` and ``}}``). Users override any of them with a TOML or JSON file whose top-level keys are
the field names of `Templates`; a template that lacks a placeholder it needs, or names one it
cannot have, is a `ConfigError` naming the file and the field. The templates that show one
example's input (`FIELD_TEMPLATES`) may also name a field of a task of named fields
(``{title}``: that field's value), checked against the task's fields when the study is
prepared (`Templates.for_task`); such a template may leave ``{input}`` out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from engine.decoding import load_toml
from engine.errors import ConfigError
from engine.nesting import json_depth_problem
from engine.propose.proposal import Evidence
from engine.task.types import FieldValues

__all__ = [
    "FIELD_TEMPLATES",
    "FIRST_SCORING_SYSTEM",
    "PLACEHOLDERS",
    "Templates",
    "fill",
    "load_templates",
    "placeholders",
]

_INTRO = (
    "I gave a friend an instruction and some inputs. The friend read the instruction and wrote "
    "an output for every one of the inputs. Here are the input-output pairs:\n\n"
)

#: field -> (placeholders it must hold, each exactly once for `insert`'s instruction)
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "forward": frozenset({"demos"}),
    "forward_chat": frozenset({"demos"}),
    "insert": frozenset({"demos", "instruction"}),
    "variant": frozenset({"instruction"}),
    "demo": frozenset({"input", "output"}),
    "demo_separator": frozenset(),
    "scoring": frozenset({"instruction", "input"}),
    "scoring_system": frozenset(),
    "reflect": frozenset({"instruction", "examples"}),
    "reflect_chat": frozenset({"instruction", "examples"}),
    "reflect_wrong": frozenset({"input", "expected", "answer"}),
    "reflect_right": frozenset({"input", "expected", "answer"}),
    "merge": frozenset({"first", "second", "first_only", "second_only"}),
    "merge_chat": frozenset({"first", "second", "first_only", "second_only"}),
    "merge_example": frozenset({"input", "expected"}),
}
#: The templates that show one example's input: they may name its fields (``{title}``).
FIELD_TEMPLATES = frozenset({"demo", "scoring", "reflect_wrong", "reflect_right", "merge_example"})


def fill(template: str, fields: FieldValues | None = None, **named: str) -> str:
    """`template` with its placeholders filled: `named`, and the input's named `fields` (a
    placeholder of the template's own wins over a field of the same name)."""
    return template.format_map({**dict(fields or ()), **named})


_REFLECT_INTRO = (
    "A language model was given this instruction for a task:\n\n{instruction}\n\nHere are some "
    "of its answers, each with the input and the expected output:\n\n{examples}\n\n"
)
_MERGE_INTRO = (
    "Two instructions were written for the same task. Each makes a language model get some "
    "inputs right that the other gets wrong.\n\nInstruction A: {first}\n\nInstruction B: "
    "{second}\n\nInputs only instruction A gets right:\n\n{first_only}\n\nInputs only "
    "instruction B gets right:\n\n{second_only}\n\n"
)


#: The output-only system message of engine versions before 2026-12-08: what a scoring
#: request's cache key leaves out, so that the answers cached by those studies still match.
FIRST_SCORING_SYSTEM = (
    "Follow the user's instruction. Reply with the output only: no explanation, no label, "
    "no quotes, nothing else."
)


@dataclass(frozen=True, slots=True)
class Templates:
    """Every template the proposer and the scorer use (defaults: the paper's)."""

    #: completions: the model continues the text after "The instruction was"
    forward: str = _INTRO + "{demos}\n\nThe instruction was"
    #: chat: one user message asking for the instruction alone
    forward_chat: str = (
        _INTRO + "{demos}\n\nWhat was the instruction? Write the instruction itself, as you "
        "would give it to the friend, not a description of the pairs. Reply with the "
        "instruction only, on one line, in this form:\nInstruction: <the instruction>"
    )
    #: completions with ``suffix``: the text before {instruction} is the prompt, after it the
    #: suffix; the model writes what goes in between
    insert: str = (
        "I instructed my friend to {instruction}. The friend read the instruction and wrote an "
        "output for every one of the inputs. Here are the input-output pairs:\n\n{demos}"
    )
    #: iterative APE: a rewording of a leader
    variant: str = (
        "Generate a variation of the following instruction while keeping the semantic meaning."
        "\n\nInput: {instruction}\n\nOutput:"
    )
    #: one demo inside {demos}, and what separates two demos
    demo: str = "Input: {input}\nOutput: {output}"
    demo_separator: str = "\n\n"
    #: what the target model is asked: the instruction, then one example's input
    scoring: str = "{instruction}\n\nInput: {input}\nOutput:"
    #: chat, output-only format: the system message before the instruction. Short on purpose:
    #: small models repeat a list of what not to write (`FIRST_SCORING_SYSTEM`) instead of
    #: answering an instruction they do not follow (docs/benchmarks.md, "Another system message")
    scoring_system: str = "Follow the user's instruction. Reply with just the output it asks for."
    #: reflection, completions: the model continues after "Diagnosis:" and ends with the
    #: revised instruction after "Instruction:"
    reflect: str = (
        _REFLECT_INTRO + "What the wrong answers have in common, and an improved instruction "
        "that makes the model give the expected output for any input, on one line after "
        '"Instruction:".\n\nDiagnosis:'
    )
    #: reflection, chat: one user message asking for a diagnosis, then the revised instruction
    reflect_chat: str = (
        _REFLECT_INTRO + "First, in at most three sentences, say what the wrong answers have in "
        "common and what the instruction fails to tell the model. Then write an improved "
        "instruction that makes the model give the expected outputs. It must describe the task "
        "for any input, not only these, and say what form the answer takes. End your reply "
        "with the improved instruction on one line, in this form:\nInstruction: <the improved "
        "instruction>"
    )
    #: one answer inside a reflection's {examples}: a wrong one, a right one
    reflect_wrong: str = (
        "Input: {input}\nExpected output: {expected}\nThe model's answer (wrong): {answer}"
    )
    reflect_right: str = (
        "Input: {input}\nExpected output: {expected}\nThe model's answer (right): {answer}"
    )
    #: merge, completions: the model continues after "Instruction:"
    merge: str = (
        _MERGE_INTRO + "One instruction that keeps what each of them does well, so that the "
        "model gets all of these right, for any input:\nInstruction:"
    )
    #: merge, chat: one user message asking for the combined instruction
    merge_chat: str = (
        _MERGE_INTRO + "Write one instruction that keeps what each of them does well, so that "
        "the model gets all of these right. It must describe the task for any input. Reply "
        "with the instruction only, on one line, in this form:\nInstruction: <the combined "
        "instruction>"
    )
    #: one example inside a merge's {first_only} and {second_only}
    merge_example: str = "Input: {input}\nExpected output: {expected}"

    def __post_init__(self) -> None:
        for name in PLACEHOLDERS:
            check_template(self, name, "templates")

    def demos(
        self, pairs: Sequence[tuple[str, str]], fields: Sequence[FieldValues | None] = ()
    ) -> str:
        """The {demos}: each (input, output) pair by `demo`, with its input's `fields` (in the
        pairs' order) when they have some."""
        named = list(fields) + [None] * (len(pairs) - len(fields))
        return self.demo_separator.join(
            fill(self.demo, f, input=x, output=y) for (x, y), f in zip(pairs, named, strict=True)
        )

    def evidence(self, evidence: Sequence[Evidence]) -> str:
        """A reflection's {examples}: each answer by `reflect_wrong` or `reflect_right`."""
        parts = []
        for item in evidence:
            template = self.reflect_right if item.right else self.reflect_wrong
            answer = item.answer if item.answer.strip() else "(no answer kept)"
            named = {"input": item.input, "expected": item.expected, "answer": answer}
            parts.append(fill(template, item.fields, **named))
        return self.demo_separator.join(parts)

    def merge_examples(self, evidence: Sequence[Evidence]) -> str:
        """A merge's {first_only} or {second_only}: each example by `merge_example`."""
        if not evidence:
            return "(none)"
        return self.demo_separator.join(
            fill(self.merge_example, item.fields, input=item.input, expected=item.expected)
            for item in evidence
        )

    def for_fields(self) -> Templates:
        """These templates for a task whose inputs have named fields: where a template says
        ``Input: {input}``, the fields show labelled, one a line (``Title: ...\nBody: ...``),
        in its place; a bare ``{input}`` shows them the same way."""
        changes = {
            name: getattr(self, name).replace("Input: {input}", "{input}") for name in PLACEHOLDERS
        }
        return dataclasses.replace(self, **changes)

    def field_placeholders(self) -> dict[str, list[str]]:
        """Per template, the placeholders that can only be fields of the task's input."""
        found = {}
        for name in sorted(FIELD_TEMPLATES):
            own = [p for p in placeholders(getattr(self, name)) if p not in PLACEHOLDERS[name]]
            if own:
                found[name] = own
        return found

    def for_task(self, fields: Sequence[str], where: str = "templates") -> Templates:
        """These templates for a task whose inputs have the named `fields` (none: text
        inputs): a placeholder that names no field is a `ConfigError` naming the template;
        for a task of fields, `for_fields`."""
        for name, named in self.field_placeholders().items():
            for placeholder in named:
                if placeholder not in fields:
                    allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS[name]))
                    have = (
                        f"the task's fields are {', '.join(fields)}"
                        if fields
                        else ("the task's inputs are text, with no fields")
                    )
                    raise ConfigError(
                        f"{where}: field {name!r} has the placeholder {{{placeholder}}}, which "
                        f"is neither one of its own ({allowed}) nor a field of the task; {have}"
                    )
        return self.for_fields() if fields else self

    def insert_parts(self, demos: str) -> tuple[str, str]:
        """(prompt, suffix) of the insert template around its instruction slot."""
        parts: list[list[str]] = [[], []]
        side = 0
        for literal, name, spec, conversion in string.Formatter().parse(self.insert):
            parts[side].append(literal)
            if name == "instruction":
                side = 1
            elif name is not None:
                value = repr(demos) if conversion == "r" else demos
                parts[side].append(format(value, spec or ""))
        return "".join(parts[0]), "".join(parts[1])

    def fingerprint(self) -> str:
        """A short hash of every template (part of the response cache's key)."""
        data = orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(data).hexdigest()[:16]


def placeholders(template: str) -> list[str]:
    """The named fields of a format string, in order, repeats included."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def check_template(templates: Templates, name: str, where: str) -> None:
    """Raise `ConfigError` naming `where` and the field when the template cannot be used."""
    value = getattr(templates, name)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: field {name!r} must be a string (got {type(value).__name__})")
    try:
        found = placeholders(value)
    except ValueError as error:
        raise ConfigError(
            f"{where}: field {name!r} is not a valid template ({error}); write literal braces "
            "as {{ and }}"
        ) from None
    needed = PLACEHOLDERS[name]
    allowed = ", ".join("{" + p + "}" for p in sorted(needed)) or "none"
    named_fields = False  # a template of one example may name its input's fields instead
    for placeholder in found:
        if placeholder in needed:
            continue
        if name in FIELD_TEMPLATES and placeholder.isidentifier():
            named_fields = True  # checked against the task's fields (`Templates.for_task`)
            continue
        raise ConfigError(
            f"{where}: field {name!r} has the placeholder {{{placeholder}}}, which it cannot "
            f"fill; its placeholders are: {allowed} (literal braces: {{{{ and }}}})"
        )
    for placeholder in sorted(needed):
        if placeholder == "input" and named_fields:
            continue
        if placeholder not in found:
            raise ConfigError(
                f"{where}: field {name!r} lacks the placeholder {{{placeholder}}}; it needs "
                f"{allowed}"
            )
    if name == "insert" and found.count("instruction") != 1:
        raise ConfigError(
            f"{where}: field 'insert' must hold {{instruction}} exactly once (the slot the model "
            "fills in)"
        )


def _read(path: Path, where: str) -> Mapping[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it ({error.strerror})") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        deep = json_depth_problem(raw)
        if deep is not None:
            raise ConfigError(f"{where}: {deep}")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise ConfigError(f"{where}: not valid JSON: {error}") from None
    elif suffix == ".toml":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(f"{where}: not UTF-8 text ({error.reason})") from None
        data = load_toml(text, where)
    else:
        raise ConfigError(f"{where}: a templates file must end in .toml or .json")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must hold a table (object) of templates")
    return data


def load_templates(path: str | Path | None) -> Templates:
    """The default templates, overridden by the fields a TOML or JSON file gives."""
    if path is None:
        return Templates()
    file = Path(path)
    where = f"templates file {str(file)!r}"
    data = _read(file, where)
    known = [f.name for f in fields(Templates)]
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{where}: unknown template {key!r}; the templates are {', '.join(known)}"
            )
    defaults = Templates()
    try:
        return dataclasses.replace(defaults, **dict(data))
    except ConfigError as error:
        raise ConfigError(str(error).replace("templates:", f"{where}:", 1)) from None
