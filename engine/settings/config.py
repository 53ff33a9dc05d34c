"""A study's settings, nested by who reads them: one frozen `StudyConfig` from code, a TOML
file, the command line or a service request, checked once where it enters.

Settings are written flat or nested, in any mix: ``concurrency = 64`` and ``[throughput]
concurrency = 64`` are the same setting (a flat name is the group's prefix and the field's
name: ``budget_usd``, ``proposal_model``; `Setting.flat`). Flags and service requests use the
flat names; a TOML file may use either; the journal keeps the nested form (version 3) and reads
the flat one of version 2. What a group leaves out is its default. A bad value is a
`ConfigError` naming its source and the name the user wrote (``config file 'x.toml':
budget_usd: Expected `float` >= 0.0, got -1 (its range: ...)``), raised before anything else
happens. Reference: TOML v1.0.0, read with the standard library's `tomllib`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

import msgspec

from engine.decoding import Invalid, convert, join, load_toml, read_text, suggest
from engine.errors import ConfigError
from engine.settings.fields import Setting, group, settings_of
from engine.settings.groups import BackendSettings, Outputs, ScoringSettings, TaskSettings
from engine.settings.roles import Role
from engine.study.settings import (
    BudgetLimits,
    FailureLimits,
    Gate,
    ProposalPlan,
    SearchSettings,
    StudySettings,
    Throughput,
)

__all__ = ["RENAMED", "SETTINGS", "StudyConfig", "load_config_file"]

#: Settings that changed name: a journal written before still resumes; elsewhere the old name
#: is refused with the new one.
RENAMED = {"budget_calls": "budget_scoring_calls"}

_DECODING: ContextVar[bool] = ContextVar("_DECODING", default=False)


class StudyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything that defines a study, by who reads it. Build one from flat names with
    `StudyConfig.of(task="sum", budget_scoring_calls=2000)`; built by keyword from groups, it
    is checked as if read from a file."""

    task: Annotated[TaskSettings, group("task")] = TaskSettings()
    target: Annotated[
        Role,
        group(
            "target model (no --base-url: $OPENAI_BASE_URL, else the simulator for a built-in "
            "task)",
            role="target",
        ),
    ] = Role(model="sim-1", protocol="openai", api="chat", timeout_s=120.0, headers={})
    proposal: Annotated[Role, group("proposal model", prefix="proposal_", role="proposal")] = Role()
    judge: Annotated[Role, group("judge model (judge scoring)", prefix="judge_", role="judge")] = (
        Role()
    )
    search: Annotated[SearchSettings, group("search")] = SearchSettings()
    scoring: Annotated[ScoringSettings, group("scoring")] = ScoringSettings()
    proposals: Annotated[ProposalPlan, group("proposals")] = ProposalPlan()
    budgets: Annotated[
        BudgetLimits, group("budgets (all optional; the first reached stops)", prefix="budget_")
    ] = BudgetLimits()
    failures: Annotated[
        FailureLimits, group("failures (the study stops past the larger of the two)")
    ] = FailureLimits()
    throughput: Annotated[Throughput, group("throughput")] = Throughput()
    gate: Annotated[
        Gate, group("gate (CI): exit 3 after the final evaluation when the winner falls short")
    ] = Gate()
    outputs: Annotated[Outputs, group("state and output")] = Outputs()
    backend: Annotated[BackendSettings, group("in-process server (no --base-url)")] = (
        BackendSettings()
    )

    def __post_init__(self) -> None:
        if _DECODING.get():
            return  # decoded: msgspec has checked every field already
        try:
            data = msgspec.to_builtins(self)
        except TypeError as error:
            raise ConfigError(f"StudyConfig: {error}") from None
        checked = StudyConfig.of(**data)
        for name in self.__struct_fields__:
            msgspec.structs.force_setattr(self, name, getattr(checked, name))

    @classmethod
    def of(cls, **settings: Any) -> StudyConfig:
        """Settings by flat name (``concurrency=64``) or by group (``throughput={...}``),
        checked; a `ConfigError` names the one refused."""
        try:
            return decode(settings)
        except Invalid as error:
            raise ConfigError(str(error)) from None

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> StudyConfig:
        """Settings as decoded JSON or TOML; raises `Invalid` naming the field as written."""
        return decode(data)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "journal") -> StudyConfig:
        """The settings of a journal header (`to_json()` output), written by this or an earlier
        version (flat, and old setting names, are read under their new places)."""
        settings = dict(data)
        for old, new in RENAMED.items():
            if old in settings and new not in settings:
                settings[new] = settings.pop(old)
        try:
            return decode(settings)
        except Invalid as error:
            raise ConfigError(f"{where}: {error}") from None

    def replace(self, **changes: Any) -> StudyConfig:
        """A copy with `changes` (flat names, or groups), checked like a new config."""
        given = {
            name: msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value
            for name, value in changes.items()
        }
        return StudyConfig.of(**{**self.to_json(), **given})

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON (for the journal header); holds no secrets, only env names."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    def flat(self) -> dict[str, Any]:
        """The settings by flat name, as flags and requests write them (the result JSON)."""
        data = self.to_json()
        return {one.flat: data[one.group][one.name] for one in SETTINGS}

    def get(self, setting: Setting) -> Any:
        return getattr(getattr(self, setting.group), setting.name)

    def study(self, user_candidates: int = 0) -> StudySettings:
        """The groups of settings the running study reads."""
        return StudySettings(
            search=self.search,
            budgets=self.budgets,
            throughput=self.throughput,
            proposals=self.proposals,
            failures=self.failures,
            gate=self.gate,
            answer_chars=self.outputs.answer_chars,
            user_candidates=user_candidates,
        )


SETTINGS: tuple[Setting, ...] = settings_of(StudyConfig)
_BY_FLAT = {one.flat: one for one in SETTINGS}
_GROUPS = {f.name for f in msgspec.structs.fields(StudyConfig)}


def _defaults() -> dict[str, dict[str, Any]]:
    token = _DECODING.set(True)
    try:
        data: dict[str, dict[str, Any]] = msgspec.to_builtins(StudyConfig())
    finally:
        _DECODING.reset(token)
    return data


_DEFAULTS = _defaults()


def nested(data: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """`data` (flat names and group tables, in any mix) over the defaults, as the nested form
    msgspec decodes; and what the user wrote for each path they set (to name it back)."""
    tree = {name: dict(values) for name, values in _DEFAULTS.items()}
    written: dict[str, str] = {}
    flat: list[tuple[str, Any]] = []
    for key, value in data.items():
        if key in _GROUPS and isinstance(value, Mapping):
            for name, item in value.items():
                tree[key][name] = item  # an unknown name is refused by the decoder
                written[f"{key}.{name}"] = f"{key}.{name}"
        elif key in _BY_FLAT:
            flat.append((key, value))
        elif key in _GROUPS:
            raise Invalid(key, f"expected a table of {key} settings, got {value!r}")
        elif key in RENAMED:
            raise Invalid(key, f"renamed; use {RENAMED[key]}")
        else:
            raise Invalid(key, "unknown field" + suggest(key, [*_BY_FLAT, *_GROUPS]))
    for key, value in flat:  # a flat name wins over its group's table (a flag over a file)
        one = _BY_FLAT[key]
        tree[one.group][one.name] = value
        written[one.path] = key
    return tree, written


def decode(data: Mapping[str, Any]) -> StudyConfig:
    tree, written = nested(data)
    token = _DECODING.set(True)
    try:
        config: StudyConfig = convert(tree, StudyConfig)
        return config
    except Invalid as error:
        raise _as_written(error, written) from None
    finally:
        _DECODING.reset(token)


def _as_written(error: Invalid, written: dict[str, str]) -> Invalid:
    """`error` with its path as the user wrote it (``budget_usd``, not ``budgets.usd``)."""
    path = error.path
    group, _, rest = path.partition(".")
    name, mark, tail = rest.partition("[")
    key = f"{group}.{name.partition('.')[0]}"
    if key in written:
        deeper = name.partition(".")[2]
        shown = join(written[key], deeper) if deeper else written[key]
        return Invalid(shown + (mark + tail if mark else ""), error.problem)
    return error


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The settings a TOML file sets (flat names and group tables, as written), checked against
    `StudyConfig`, not yet merged with the command line's."""
    file = Path(path)
    where = f"config file {str(file)!r}"
    data = load_toml(read_text(file, where), where)
    try:
        decode(data)
    except Invalid as error:
        raise ConfigError(f"{where}: {error}") from None
    return data
