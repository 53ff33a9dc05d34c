"""Each setting as one record, read off its field's declaration (`engine.decoding.setting`).

`settings_of(StudyConfig)` walks the groups of the settings type and gives one `Setting` per
field: its path (``throughput.concurrency``), its flat name (``concurrency``: a flat TOML
key, a service request's field, the journal of version 2), its flag, help, range, default and
rules. Everything that lists settings -- the flags, the service's request type, what a request
may not give, what defines a study, what may change on resume, the guide's table -- is derived
from these records, as pydantic-settings derives a command line from nested models.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

import msgspec

from engine.decoding import SettingOwner, value_range

__all__ = ["Setting", "group", "settings_of", "value_kind"]

#: How a role's help names it: {role}, {its} (whose key), {a} (whose call).
_ROLE_WORDS = {
    "target": {"role": "target", "its": "the target's", "a": "a"},
    "proposal": {"role": "proposal", "its": "the proposal model's", "a": "a proposal"},
    "judge": {"role": "judge", "its": "the judge's", "a": "a judge"},
}


def group(title: str, *, prefix: str = "", role: str | None = None) -> msgspec.Meta:
    """A group of settings in the settings type (``Annotated[Throughput, group("...")]``): its
    title (a heading of ``--help`` and of the guide's table), the prefix of its fields' flat
    names (``budget_`` + ``usd``), and the role it configures when it is one."""
    extra: dict[str, Any] = {"prefix": prefix}
    if role is not None:
        extra["role"] = role
    return msgspec.Meta(description=title, extra=extra)


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: where it lives, what it is called, what it takes, and who may set it."""

    path: str  # group.field
    group: str
    name: str  # the field's name in its group
    flat: str  # its name in a flat file, a request, a version-2 journal
    flag: str  # "" when no flag gives it (TOML, a request and Python only)
    aliases: tuple[str, ...]
    type: Any  # the field's annotated type: msgspec checks values against it
    default: Any
    help: str
    metavar: str | None
    owner: SettingOwner
    why: str | None  # why a request may not give it
    defines: bool
    resume: bool
    live: bool
    title: str  # the group's title
    role: str | None

    @property
    def kind(self) -> Any:
        """The value's type, without constraints or None (what a flag converts to)."""
        return value_kind(self.type)

    @property
    def range(self) -> str:
        return value_range(self.type)

    @property
    def choices(self) -> tuple[Any, ...]:
        kind = self.kind
        return typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else ()


def value_kind(annotation: Any) -> Any:
    """The one type a value has: Annotated, None and unions peeled off."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return value_kind(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return value_kind(kinds[0]) if len(kinds) == 1 else annotation
    return annotation


def _meta(annotation: Any, key: str) -> msgspec.Meta | None:
    """The first Meta of `annotation` (or of a member of its union) whose `extra` has `key`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        args = typing.get_args(annotation)
        for meta in args[1:]:
            if isinstance(meta, msgspec.Meta) and key in (meta.extra or {}):
                return meta
        return _meta(args[0], key)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _meta(arg, key)
            if found is not None:
                return found
    return None


def _help(text: str, role: str | None, default: Any) -> str:
    if role is None:
        return text
    text = text.format(**_ROLE_WORDS[role])
    if role != "target" and default is None:
        text += " (default: the target's)"
    return text


def settings_of(top: type[msgspec.Struct]) -> tuple[Setting, ...]:
    """The settings of `top`, group by group in declaration order."""
    found: list[Setting] = []
    for outer in msgspec.structs.fields(top):
        meta = _meta(outer.type, "prefix")
        assert meta is not None, f"{outer.name}: a group needs group(...)"
        extra = meta.extra or {}
        prefix, role = str(extra["prefix"]), extra.get("role")
        kind = value_kind(outer.type)
        defaults = outer.default if outer.default is not msgspec.NODEFAULT else kind()
        for inner in msgspec.structs.fields(kind):
            declared = _meta(inner.type, "owner")
            if declared is None:
                continue  # not a setting (a value the composition fills in)
            rules = declared.extra or {}
            flat = rules.get("flat") or prefix + inner.name
            stem = prefix + rules["flag"] if rules.get("flag") else flat
            default = getattr(defaults, inner.name)
            found.append(
                Setting(
                    path=f"{outer.name}.{inner.name}",
                    group=outer.name,
                    name=inner.name,
                    flat=flat,
                    flag="" if rules.get("flag") == "" else "--" + stem.replace("_", "-"),
                    aliases=tuple(rules.get("aliases", ())),
                    type=inner.type,
                    default=default,
                    help=_help(declared.description or "", role, default),
                    metavar=rules.get("metavar"),
                    owner=rules["owner"],
                    why=rules.get("why"),
                    defines=bool(rules["defines"]),
                    resume=bool(rules["resume"]),
                    live=bool(rules["live"]),
                    title=meta.description or outer.name,
                    role=role,
                )
            )
    return tuple(found)


def _shown(value: Any) -> str:
    if value is None or value in ({}, [], ""):
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"`{value}`"


def _rules(one: Setting) -> str:
    rules = [
        word
        for word, holds in (
            ("defines the study", one.defines),
            ("changes on resume", one.resume),
            ("changes while it runs", one.live),
            ("the operator's in a service", one.owner == "operator"),
        )
        if holds
    ]
    return "; ".join(rules)


def settings_table(settings: tuple[Setting, ...]) -> str:
    """The settings as the Markdown table of docs/guide.md ("Every setting"), a section per
    group: flat key, place in the group, flag, default, range or choices, meaning, rules."""
    lines: list[str] = []
    title = None
    for one in settings:
        if one.title != title:
            title = one.title
            lines += [
                "",
                f"**{title}**",
                "",
                "| key | in a file | flag | default | range | meaning |",
            ]
            lines += ["|---|---|---|---|---|---|"]
        values = ", ".join(f"`{c}`" for c in one.choices) or one.range
        meaning = one.help.replace("|", "\\|")
        rules = _rules(one)
        if rules:
            meaning += f" ({rules})"
        flag = ", ".join(f"`{flag}`" for flag in (one.flag, *one.aliases)) or "(none)"
        lines.append(
            f"| `{one.flat}` | `{one.path}` | {flag} | {_shown(one.default)} | {values} | "
            f"{meaning} |"
        )
    return "\n".join(lines[1:]) + "\n"
