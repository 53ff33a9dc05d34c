"""The prompt templates of APE as data: forward, insert (reverse), variant, demo and scoring.

Zhou et al. (ICLR 2023), section 3.1 and appendix: the *forward* template shows the demos and
lets the model continue "The instruction was" (completions) or asks for the instruction alone
(chat); the *insert* template puts the instruction slot before the demos and lets a model that
fills in the middle (completions ``suffix``) write it; the *variant* template of iterative APE
asks for a rewording of a leader. Each template is a Python format string with named
placeholders (``{demos}``, ``{instruction}``, ``{input}``, ``{output}``; write literal braces as
``{{`` and ``}}``). Users override any of them with a TOML or JSON file whose top-level keys are
the field names of `Templates`; a template that lacks a placeholder it needs, or names one it
cannot have, is a `ConfigError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import string
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from engine.decoding import load_toml
from engine.errors import ConfigError
from engine.nesting import json_depth_problem

__all__ = ["PLACEHOLDERS", "Templates", "load_templates", "placeholders"]

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
}


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

    def __post_init__(self) -> None:
        for name in PLACEHOLDERS:
            check_template(self, name, "templates")

    def demos(self, pairs: list[tuple[str, str]]) -> str:
        return self.demo_separator.join(self.demo.format(input=x, output=y) for x, y in pairs)

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
    for placeholder in found:
        if placeholder not in needed:
            raise ConfigError(
                f"{where}: field {name!r} has the placeholder {{{placeholder}}}, which it cannot "
                f"fill; its placeholders are: {allowed} (literal braces: {{{{ and }}}})"
            )
    for placeholder in sorted(needed):
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
