"""The command line's flags for the study settings, derived from their declarations.

A flag is the setting's flat name with dashes (``--budget-scoring-calls`` sets
``budget_scoring_calls``, that is ``budgets.scoring_calls``) unless its field names another
(``--json``, ``--header``); its type, choices, metavar, help and shown default come from the
field (`engine.settings.SETTINGS`), grouped under its group's title. `run` offers every setting
a flag can give, `resume` those a journal may change. A role's ``--base-url`` may be repeated:
several give the role's endpoints. The values are checked once, by `StudyConfig`, and a bad one
is named by its flag.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from engine.decoding import Invalid
from engine.errors import ConfigError, Naming
from engine.settings import SETTINGS, Setting, StudyConfig

__all__ = [
    "FLAGGED",
    "add_setting_flags",
    "checked_config",
    "command_line_naming",
    "flag_of",
    "given_settings",
    "named_in_file",
]


#: The settings with a flag, by flat name.
FLAGGED: dict[str, Setting] = {one.flat: one for one in SETTINGS if one.flag}
_BY_FLAT = {one.flat: one for one in SETTINGS}


def flag_of(name: str) -> str:
    """The flag of a setting's flat name (``budget_scoring_calls`` -> ``--budget-scoring-calls``),
    or the name itself when no flag gives it."""
    one = _BY_FLAT.get(name)
    return one.flag if one is not None and name in FLAGGED else name


def command_line_naming(in_file: Iterable[str] = (), **flags: str) -> Naming:
    """Settings named as the command line gives them: by flag, but those `in_file` (flat names a
    TOML file gave) by their key there; `flags` adds a command's own (``task_format="--format"``
    for `ape-engine tasks`)."""
    kept = set(in_file)
    named = {flat: one.flag for flat, one in FLAGGED.items() if flat not in kept}
    return Naming(flags={**named, **flags}, in_file=True)


def named_in_file(data: Mapping[str, Any]) -> set[str]:
    """The flat names of the settings a TOML file's data gives (flat keys, or group tables)."""
    by_path = {one.path: one.flat for one in SETTINGS}
    named = set()
    for key, value in data.items():
        if key in _BY_FLAT:
            named.add(key)
        elif isinstance(value, Mapping):
            named |= {by_path[f"{key}.{inner}"] for inner in value if f"{key}.{inner}" in by_path}
    return named


def _repeated(one: Setting) -> bool:
    return one.role is not None and one.name == "base_url"


def _add_flag(group: Any, one: Setting, *, show_default: bool) -> None:
    flags = (one.flag, *one.aliases)
    kind, default, text = one.kind, one.default, one.help
    if kind is bool:
        on = default is True  # on by default: --name / --no-name
        action = argparse.BooleanOptionalAction if on else "store_true"
        group.add_argument(*flags, dest=one.flat, action=action, default=None, help=text)
        return
    if _repeated(one):  # one URL per endpoint of the role
        group.add_argument(*flags, dest=one.flat, action="append", metavar="URL", help=text)
        return
    if typing.get_origin(kind) is dict:  # NAME=VALUE, repeatable
        group.add_argument(
            *flags, dest=one.flat, action="append", type=_pair, metavar=one.metavar, help=text
        )
        return
    options: dict[str, Any] = {"dest": one.flat, "help": text}
    if one.choices:
        options["choices"] = one.choices
    else:
        options["type"] = kind
        options["metavar"] = one.metavar or {int: "N", float: "X"}.get(kind)
    if show_default and default not in (None, "", {}, []):
        options["help"] = f"{text} (default: {default})"
    group.add_argument(*flags, **options)


def add_setting_flags(
    parser: argparse.ArgumentParser,
    names: Iterable[str] | None = None,
    *,
    show_defaults: bool = True,
) -> None:
    """A flag for each setting flat-named in `names` (every flagged one when None), under its
    group's title; the help shows the field's default unless `show_defaults` is false (the
    journal's value stands)."""
    wanted = set(FLAGGED if names is None else names) & FLAGGED.keys()
    groups: dict[str, Any] = {}
    for one in SETTINGS:
        if one.flat not in wanted:
            continue
        if one.title not in groups:
            groups[one.title] = parser.add_argument_group(one.title)
        _add_flag(groups[one.title], one, show_default=show_defaults)


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text.partition('=')[0]!r}")
    return name.strip(), value.strip()


def given_settings(args: argparse.Namespace, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The settings the flags gave (a flag left out is None), by flat name; NAME=VALUE pairs
    become a table. A repeated --base-url gives the role's endpoints, one gives its
    `base_url`; either replaces the other."""
    settings: dict[str, Any] = {}
    for name in FLAGGED if names is None else names:
        value = getattr(args, name, None)
        if value is None or name not in FLAGGED:
            continue
        one = FLAGGED[name]
        if _repeated(one):
            several = len(value) > 1
            listed = name.replace("base_url", "endpoints")
            settings[name] = None if several else value[0]
            settings[listed] = [{"base_url": url} for url in value] if several else []
        else:
            settings[name] = dict(value) if isinstance(value, list) else value
    return settings


def checked_config(settings: Mapping[str, Any], flags: Iterable[str] = ()) -> StudyConfig:
    """`settings` as a `StudyConfig`; a bad value given by one of `flags` is named by its
    flag (``--concurrency: Expected `int` >= 1, got 0``)."""
    try:
        return StudyConfig.decode(settings)
    except Invalid as error:
        name = error.path.partition(".")[0].partition("[")[0]
        if name.endswith("endpoints") and name.replace("endpoints", "base_url") in FLAGGED:
            name = name.replace("endpoints", "base_url")  # endpoints[1]: the second --base-url
        where = flag_of(name) if name in set(flags) else error.path
        raise ConfigError(f"{where}: {error.problem}" if where else error.problem) from None
