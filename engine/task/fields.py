"""Inputs of several named fields: a ticket's title and body, a question and its context.

An example's input is either one text or an object of named fields. A field's value is text (a
number or a boolean is written as JSON writes it; a list or an object as compact JSON), never a
Python repr. The fields are shown to the models labelled, one a line, in the order the example
gives them (``Title: order 0\\nBody: 16 apples and 38 pears``): that text is the example's
`input`, which every template's ``{input}`` shows, and `Example.fields` keeps the fields
themselves. A single-text example has no fields and its input is the text as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from engine.errors import DatasetError
from engine.task.types import Example, FieldValues

__all__ = ["field_names", "input_of", "label", "rendered", "text_of", "with_fields"]

_JSON = json.JSONEncoder(ensure_ascii=False)


def label(name: str) -> str:
    """A field's label in a prompt: its name with spaces for underscores, the first letter
    upper case (``order_id`` -> ``Order id``)."""
    words = name.replace("_", " ").strip() or name
    return words[:1].upper() + words[1:]


def rendered(fields: FieldValues) -> str:
    """The fields as the models see them: ``Label: value``, one a line."""
    return "\n".join(f"{label(name)}: {value}" for name, value in fields)


def text_of(value: Any) -> str:
    """A value of a task file as text: a string as it is, anything else as JSON writes it."""
    if isinstance(value, str):
        return value
    return str(_JSON.encode(value))


def input_of(value: Any, where: str) -> tuple[str, FieldValues | None]:
    """An example's input from a decoded record: (its text, its fields or None). An object is
    an input of named fields; an empty one, or a field name that is blank, is refused."""
    if not isinstance(value, Mapping):
        if isinstance(value, list):
            return text_of(value), None
        return str(value), None
    if not value:
        raise DatasetError(f"{where}: the input is an empty object; give it at least one field")
    fields = tuple((str(name), text_of(item)) for name, item in value.items())
    for name, _ in fields:
        if not name.strip():
            raise DatasetError(f"{where}: the input has a field with a blank name")
    return rendered(fields), fields


def with_fields(fields: FieldValues, outputs: tuple[str, ...], key: str = "") -> Example:
    """An example whose input is `fields` ((name, value) pairs, in order)."""
    return Example(rendered(fields), outputs, key=key, fields=fields)


def field_names(examples: Iterable[Example]) -> tuple[str, ...]:
    """The field names of the examples' inputs, in the order they first appear."""
    names: dict[str, None] = {}
    for example in examples:
        for name, _ in example.fields or ():
            names.setdefault(name)
    return tuple(names)
