"""Typed decoding where data enters: a value is checked against a type once, then trusted.

msgspec checks a value against a type (its constraints included) and says where it failed,
as ``$.config.prices[...].input``. `Invalid` says the same with a dotted path the user wrote
(``config.prices.my-model.input``: the key of a mapping is found again in the data) and a
problem that helps: the names an object allows, the choices of an enum, the value refused.
Each boundary turns `Invalid` into its own error (`ConfigError`, the service's `RequestError`,
`SnapshotError`) with its source in front. Reference: msgspec, "Constraints" and "Usage:
Converters" (https://jcristharif.com/msgspec/).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import msgspec

from engine.errors import ConfigError
from engine.nesting import json_depth_problem, toml_depth_problem

__all__ = [
    "Invalid",
    "constraints",
    "convert",
    "decode_json",
    "invalid",
    "join",
    "load_toml",
    "read_text",
    "setting",
    "suggest",
    "value_range",
]

T = TypeVar("T")

_LOCATED = re.compile(r"^(?P<problem>.*?)(?: - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`)?$", re.S)
_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|(\[\.\.\.\])")
_NAMED = re.compile(r"^Object (?P<what>missing required|contains unknown) field `(?P<name>[^`]*)`$")
_SHOWN = 60  # characters of a refused value shown in a message


SettingOwner = Literal["user", "operator"]


def setting(
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    metavar: str | None = None,
    flat: str | None = None,
    owner: SettingOwner = "user",
    why: str | None = None,
    defines: bool = False,
    resume: bool = False,
    live: bool = False,
) -> msgspec.Meta:
    """A setting declared once, on its field (``Annotated[int, setting(...)] = 20``): its help
    and range (checked by msgspec wherever the value enters), and what the front ends derive
    from it -- `flag` (the name after ``--`` when not the field's flat name; "" for none),
    `aliases` (older
    flags that still work), `metavar`, `flat` (its name in a flat TOML file, a request and
    today's flags, when not the group's prefix + the field's name), `owner` (``operator``: a
    service request may not give it; `why` says so), `defines` (a journal resumes only with the
    same value), `resume` (it may change on resume), `live` (it may change while the study
    runs). `engine.settings` collects them (`SETTINGS`)."""
    extra: dict[str, Any] = {"owner": owner, "defines": defines, "resume": resume, "live": live}
    named = {"flag": flag, "metavar": metavar, "flat": flat, "why": why}  # flag "": no flag
    extra.update({key: value for key, value in named.items() if value is not None})
    if aliases:
        extra["aliases"] = aliases
    constraints = {"ge": ge, "gt": gt, "le": le, "lt": lt, "pattern": pattern}
    constraints.update(min_length=min_length, max_length=max_length)
    given = {key: value for key, value in constraints.items() if value is not None}
    meta: Any = msgspec.Meta
    return cast(msgspec.Meta, meta(**given, description=help, extra=extra))


class Invalid(Exception):
    """A value a typed decoder refused: `path` is dotted (``prices.m.input``,
    ``examples[3].output``; empty for the whole value), `problem` says what is wrong."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem

    def within(self, prefix: str) -> Invalid:
        """The same problem, its path under `prefix` (``config`` + ``budget_usd``)."""
        return Invalid(join(prefix, self.path), self.problem)


def read_text(path: str | Path, where: str) -> str:
    """A settings file's text (UTF-8); a `ConfigError` starting with `where` when it cannot be
    read or is not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where}: not UTF-8 text ({error.reason})") from None


def load_toml(text: str, where: str) -> dict[str, Any]:
    """A settings file's TOML text as a table; a `ConfigError` starting with `where` when it
    is not TOML or nests deeper than `engine.nesting.MAX_DEPTH`."""
    deep = toml_depth_problem(text)
    if deep is not None:
        raise ConfigError(f"{where}: {deep}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None


def join(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix or path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def convert(data: Any, type_: Any) -> Any:
    """`data` (Python built-ins: decoded JSON or TOML) as `type_`, or `Invalid`."""
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as error:
        raise invalid(error, data, type_) from None


def decode_json(raw: bytes, type_: Any) -> Any:
    """JSON bytes as `type_`, or `Invalid` (path "" when the bytes are not JSON, or nest
    deeper than `engine.nesting.MAX_DEPTH`)."""
    deep = json_depth_problem(raw)
    if deep is not None:
        raise Invalid("", deep)
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as error:
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            data = _UNKNOWN  # refused before the rest was read, and the rest is not JSON
        raise invalid(error, data, type_) from None
    except msgspec.DecodeError as error:
        raise Invalid("", f"not valid JSON ({error})") from None


_UNKNOWN = object()


def invalid(error: msgspec.ValidationError, data: Any, type_: Any) -> Invalid:
    """msgspec's error about `data` decoded as `type_`, said with a dotted path."""
    match = _LOCATED.match(str(error))
    assert match is not None  # the pattern matches any text
    problem, raw_path = match["problem"], match["path"] or ""
    walk = _Walk(data, type_)
    for field, index, _mapping in _PART.findall(raw_path):
        if field:
            walk.field(field)
        elif index:
            walk.index(int(index))
        else:
            walk.key(bad_key=False)
    if match["key"]:  # "... - at `key` in `$.budgets`": a key of that mapping is refused
        walk.key(bad_key=True)
    named = _NAMED.match(problem)
    if named is not None:
        names = walk.names()
        walk.field(named["name"])
        if named["what"] == "missing required":
            problem = "missing; it is required"
        else:
            problem = "unknown field" + suggest(named["name"], names)
    elif problem.startswith(("Invalid enum value", "Invalid value")) and walk.choices():
        problem += f"; choose one of {', '.join(walk.choices())}"
    elif problem.startswith("Expected") and not isinstance(walk.data, dict | list):
        if walk.data is _UNKNOWN:
            pass
        elif ", got " in problem:  # the type it has: show the value too
            problem += f" ({_show(walk.data)})"
        else:  # a constraint it breaks
            problem += f", got {_show(walk.data)}"
            bounds = value_range(walk.type)
            if bounds:
                problem += f" (its range: {bounds})"
    return Invalid(walk.path, problem)


def value_range(type_: Any) -> str:
    """The range a numeric type's constraints allow (``1 to 50``, ``>= 0``), or ""."""
    for meta in constraints(type_):
        if (meta.ge, meta.gt, meta.le, meta.lt) == (None, None, None, None):
            continue
        low = _bound(meta.ge, "") if meta.ge is not None else _bound(meta.gt, "above ")
        high = _bound(meta.le, "") if meta.le is not None else _bound(meta.lt, "below ")
        if low and high:
            return f"{low} to {high}"
        if low or high:
            return f">= {low}" if low and not low.startswith("above") else (low or high)
    return ""


def _bound(value: float | None, words: str) -> str:
    if value is None:
        return ""
    shown = f"{value:,}" if isinstance(value, int) or float(value).is_integer() else f"{value:g}"
    return words + shown.removesuffix(".0")


def constraints(type_: Any) -> list[msgspec.Meta]:
    """The Meta constraints of `type_` or of its Annotated members."""
    found: list[msgspec.Meta] = []
    if typing.get_origin(type_) is typing.Annotated:
        found += [m for m in typing.get_args(type_)[1:] if isinstance(m, msgspec.Meta)]
        found += constraints(typing.get_args(type_)[0])
    elif typing.get_origin(type_) in (typing.Union, types.UnionType):
        for arg in typing.get_args(type_):
            found += constraints(arg)
    return found


def suggest(name: str, names: list[str]) -> str:
    """ "; did you mean 'x'?" for a close name, else the names there are. A name matches with
    one of its middle words left out too (``budget_calls`` is close to
    ``budget_scoring_calls``)."""

    def likeness(candidate: str) -> float:
        words = candidate.split("_")
        shorter = ["_".join(words[:i] + words[i + 1 :]) for i in range(1, len(words) - 1)]
        return max(difflib.SequenceMatcher(None, name, c).ratio() for c in [candidate, *shorter])

    best = max(names, key=likeness, default=None)
    if best is not None and likeness(best) >= 0.75:
        return f"; did you mean {best!r}?"
    return f"; expected one of {', '.join(names)}" if names else ""


def _show(value: Any) -> str:
    """A refused value as the user wrote it (JSON; TOML's inf and nan as such), cut short."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        shown = msgspec.json.encode(value).decode(errors="replace")
    except (TypeError, msgspec.EncodeError):
        shown = repr(value)
    return shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "..."


class _Walk:
    """Follows a msgspec error path through the data and its type at once."""

    def __init__(self, data: Any, type_: Any) -> None:
        self.data = data
        self.type: Any = type_
        self.path = ""
        self.tags: list[str] = []  # the tags a tagged union allows, at its tag field

    def field(self, name: str) -> None:
        self.path = join(self.path, name)
        self.tags = _tags(self.type, name)
        kind = _tagged(self.type, self.data)
        self.data = self.data.get(name, _UNKNOWN) if isinstance(self.data, dict) else _UNKNOWN
        self.type = _field_types(kind).get(name)

    def index(self, index: int) -> None:
        self.path += f"[{index}]"
        data = self.data
        self.data = data[index] if isinstance(data, list) and index < len(data) else _UNKNOWN
        items = [typing.get_args(t) for t in _members(self.type) if typing.get_origin(t) in _SEQ]
        self.type = items[0][0] if items and items[0] else None

    def key(self, *, bad_key: bool) -> None:
        """Into a mapping: the first entry of the data that its key or value type refuses."""
        kinds = [typing.get_args(t) for t in _members(self.type) if typing.get_origin(t) is dict]
        key_type, value_type = kinds[0] if kinds and len(kinds[0]) == 2 else (None, None)
        entries = self.data.items() if isinstance(self.data, dict) else ()
        for key, value in entries:
            if not _fits(key if bad_key else value, key_type if bad_key else value_type):
                self.path = join(self.path, str(key))
                self.data, self.type = (key, key_type) if bad_key else (value, value_type)
                return
        self.path += "[...]"
        self.data, self.type = _UNKNOWN, None

    def names(self) -> list[str]:
        return list(_field_types(_tagged(self.type, self.data)))

    def choices(self) -> list[str]:
        literals = [t for t in _members(self.type) if typing.get_origin(t) is typing.Literal]
        return [str(value) for t in literals for value in typing.get_args(t)] or self.tags


_SEQ = (list, tuple, set, frozenset)


def _members(type_: Any) -> list[Any]:
    """The types a value of `type_` may have: Annotated stripped, unions split."""
    if typing.get_origin(type_) is typing.Annotated:
        return _members(typing.get_args(type_)[0])
    if typing.get_origin(type_) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(type_) for m in _members(arg)]
    return [] if type_ is None else [type_]


def _structs(type_: Any) -> list[Any]:
    return [m for m in _members(type_) if isinstance(m, type) and issubclass(m, msgspec.Struct)]


def _tags(type_: Any, name: str) -> list[str]:
    """The tags of a union of tagged Structs whose tag field is `name` (else none)."""
    configs = [member.__struct_config__ for member in _structs(type_)]
    if len(configs) < 2 or any(config.tag_field != name for config in configs):
        return []
    return [str(config.tag) for config in configs]


def _tagged(type_: Any, data: Any) -> Any:
    """The member of a union of tagged Structs that `data` names by its tag, else `type_`."""
    for member in _structs(type_):
        config = member.__struct_config__
        if config.tag_field and isinstance(data, dict) and data.get(config.tag_field) == config.tag:
            return member
    return type_


def _field_types(type_: Any) -> dict[str, Any]:
    """The JSON field names of the Struct or dataclass among `type_`'s members, and their types."""
    for member in _members(type_):
        if isinstance(member, type) and issubclass(member, msgspec.Struct):
            return {f.encode_name: f.type for f in msgspec.structs.fields(member)}
        if isinstance(member, type) and dataclasses.is_dataclass(member):
            hints = typing.get_type_hints(member, include_extras=True)
            return {f.name: hints[f.name] for f in dataclasses.fields(member)}
    return {}


def _fits(value: Any, type_: Any) -> bool:
    if type_ is None:
        return True
    try:
        msgspec.convert(value, type_)
    except msgspec.ValidationError:
        return False
    return True
