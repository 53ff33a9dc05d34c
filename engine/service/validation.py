"""Checking the service's request bodies before anything changes.

Every check names the field it refuses (``config.budget_calls``, ``task.examples[3].output``,
``rate_limits.requests_per_minute``) in a `RequestError`, which the app answers with a 4xx
``{"error": {"message", "field"}}``. A PATCH body is checked whole, and only then applied, so a
bad field changes nothing. Study settings are typed from `StudyConfig`'s own fields, so a new
setting is accepted (and described in /openapi.json) without a change here.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson

from engine.errors import ConfigError, EngineError
from engine.study.budgets import BUDGET_NAMES, Price
from engine.study.config import StudyConfig, load_config_file
from engine.task import METRICS

__all__ = [
    "CONFIG_TYPES",
    "RATE_LIMIT_NAMES",
    "SERVICE_OWNED",
    "Patch",
    "RequestError",
    "config_field",
    "parse_create",
    "parse_patch",
    "write_inline_task",
]

#: Settings the service chooses itself (the journal lives in its state directory).
SERVICE_OWNED = frozenset({"journal"})
RATE_LIMIT_NAMES = ("requests_per_minute", "tokens_per_minute")
_COUNT_BUDGETS = frozenset({"scoring_calls", "proposal_calls", "tokens"})
_TASK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MAX_CONCURRENCY = 100_000


class RequestError(EngineError):
    """A request the service refuses: `status` is the HTTP status, `field` what it names."""

    def __init__(self, message: str, field: str | None = None, *, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def _field_types() -> dict[str, tuple[str, ...]]:
    """StudyConfig field -> JSON kinds it accepts ("string", "integer", "number", "boolean",
    "null", "object"), read from the field annotations."""
    kinds = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
    types: dict[str, tuple[str, ...]] = {}
    for item in fields(StudyConfig):
        annotation = str(item.type)
        accepted = []
        for part in annotation.split("|"):
            part = part.strip()
            if part == "None":
                accepted.append("null")
            elif part in kinds:
                accepted.append(kinds[part])
            elif part.startswith(("Mapping", "dict")):
                accepted.append("object")
        types[item.name] = tuple(accepted)
    return types


#: The JSON kinds each study setting accepts (also the schema in /openapi.json).
CONFIG_TYPES: dict[str, tuple[str, ...]] = _field_types()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


def _check_kind(value: Any, accepted: tuple[str, ...], where: str) -> Any:
    kind = _kind(value)
    if kind in accepted:
        return value
    if kind == "integer" and "number" in accepted:
        return value
    if kind == "number" and "integer" in accepted and float(value).is_integer():
        return int(value)  # 200.0 from a JSON encoder that writes every number as a float
    wanted = " or ".join("an integer" if k == "integer" else f"a {k}" for k in accepted)
    raise RequestError(f"{where}: expected {wanted} (got {orjson.dumps(value).decode()})", where)


def config_field(error: ConfigError | EngineError, prefix: str = "config") -> str | None:
    """The setting a `ConfigError` message starts with (``"policy: unknown ..."``), as a field."""
    match = re.match(r"^([a-z_]+):", str(error))
    if match and match.group(1) in CONFIG_TYPES:
        return f"{prefix}.{match.group(1)}"
    return None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(f"{where}: expected a JSON object", where)
    return value


def _settings(raw: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name, value in _object(raw, "config").items():
        where = f"config.{name}"
        if name not in CONFIG_TYPES:
            raise RequestError(
                f"{where}: unknown setting; the settings are {', '.join(sorted(CONFIG_TYPES))}",
                where,
            )
        if name in SERVICE_OWNED:
            raise RequestError(
                f"{where}: the service keeps each study's journal in its state directory; "
                "leave it out",
                where,
            )
        if name == "prices":
            settings[name] = _prices(value)
        else:
            settings[name] = _check_kind(value, CONFIG_TYPES[name], where)
    return settings


def _prices(raw: Any) -> dict[str, Price]:
    prices: dict[str, Price] = {}
    for model, entry in _object(raw, "config.prices").items():
        where = f"config.prices.{model}"
        entry = _object(entry, where)
        for key in entry:
            if key not in ("input", "output"):
                raise RequestError(
                    f"{where}.{key}: unknown field; a price has input and output (USD per "
                    "million tokens)",
                    f"{where}.{key}",
                )
        values = {}
        for key in ("input", "output"):
            value = _check_kind(entry.get(key, 0.0), ("number",), f"{where}.{key}")
            if not (math.isfinite(value) and value >= 0):
                raise RequestError(f"{where}.{key}: must be a number >= 0", f"{where}.{key}")
            values[key] = float(value)
        prices[model] = Price(values["input"], values["output"])
    return prices


@dataclass(frozen=True, slots=True)
class InlineTask:
    name: str
    examples: tuple[dict[str, Any], ...]
    human_instruction: str | None = None
    description: str | None = None
    metric: str | None = None


def _text(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise RequestError(f"{where}: expected a non-empty string", where)
    return value


def _inline_task(raw: Any) -> InlineTask:
    task = _object(raw, "task")
    known = ("name", "examples", "human_instruction", "description", "metric")
    for key in task:
        if key not in known:
            raise RequestError(
                f"task.{key}: unknown field; an inline task has {', '.join(known)}", f"task.{key}"
            )
    if "name" not in task:
        raise RequestError(
            "task.name: missing; name the task (letters, digits, _ . -)", "task.name"
        )
    name = _text(task["name"], "task.name")
    if not _TASK_NAME.match(name):
        raise RequestError(
            f"task.name: {name!r} must be 1-64 letters, digits, '_', '.' or '-'", "task.name"
        )
    examples = task.get("examples")
    if not isinstance(examples, list) or not examples:
        raise RequestError(
            'task.examples: expected a non-empty list of {"input": ..., "output": ...}',
            "task.examples",
        )
    checked: list[dict[str, Any]] = []
    with_choices = 0
    for index, example in enumerate(examples):
        where = f"task.examples[{index}]"
        example = _object(example, where)
        for key in example:
            if key not in ("input", "output", "choices"):
                raise RequestError(
                    f"{where}.{key}: unknown field; an example has input, output and choices",
                    f"{where}.{key}",
                )
        for key in ("input", "output"):
            if key not in example:
                raise RequestError(f"{where}.{key}: missing", f"{where}.{key}")
        text = _text(example["input"], f"{where}.input", empty=True)
        output = example["output"]
        outputs = [output] if isinstance(output, str) else output
        if (
            not isinstance(outputs, list)
            or not outputs
            or not all(isinstance(o, str) and o.strip() for o in outputs)
        ):
            raise RequestError(
                f"{where}.output: expected a non-empty string or a list of them", f"{where}.output"
            )
        item: dict[str, Any] = {"input": text, "outputs": outputs}
        choices = example.get("choices")
        if choices is not None:
            if (
                not isinstance(choices, list)
                or not choices
                or not all(isinstance(c, str) and c for c in choices)
            ):
                raise RequestError(
                    f"{where}.choices: expected a non-empty list of strings", f"{where}.choices"
                )
            missing = [o for o in outputs if o not in choices]
            if missing:
                raise RequestError(
                    f"{where}.output: {missing[0]!r} is not one of the choices", f"{where}.output"
                )
            item["choices"] = choices
            with_choices += 1
        checked.append(item)
    if 0 < with_choices < len(checked):
        raise RequestError(
            "task.examples: give choices for every example or for none", "task.examples"
        )
    human = task.get("human_instruction")
    description = task.get("description")
    if human is not None:
        human = _text(human, "task.human_instruction")
    if description is not None:
        description = _text(description, "task.description", empty=True)
    metric = task.get("metric")
    if metric is not None and metric not in METRICS:
        raise RequestError(
            f"task.metric: unknown metric {metric!r}; choose one of {', '.join(METRICS)}",
            "task.metric",
        )
    return InlineTask(name, tuple(checked), human, description, metric)


def write_inline_task(task: InlineTask, folder: Path) -> Path:
    """Write an inline task as a BIG-Bench `task.json` (the format that carries a name and a
    human instruction) under `folder`, named by its content so a repeat reuses the file; the
    study's journal names this file, so a resumed study finds its task again."""
    multiple_choice = any("choices" in example for example in task.examples)
    examples: list[dict[str, Any]] = []
    for example in task.examples:
        if multiple_choice:
            scores = {c: int(c in example["outputs"]) for c in example["choices"]}
            examples.append({"input": example["input"], "target_scores": scores})
        else:
            examples.append({"input": example["input"], "target": example["outputs"]})
    document: dict[str, Any] = {
        "name": task.name,
        "description": task.description or "",
        "metrics": ["multiple_choice_grade" if multiple_choice else "exact_str_match"],
        "append_choices_to_input": False,
        "examples": examples,
    }
    if task.human_instruction:
        document["task_prefix"] = task.human_instruction
    body = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(body).hexdigest()[:12]
    path = folder / f"{task.name}-{digest}" / "task.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(body + b"\n")
        temporary.replace(path)
    return path


def parse_create(body: Any) -> tuple[dict[str, Any], InlineTask | None]:
    """The settings (TOML file first, then `config` over it) and the inline task of a POST
    /v1/studies body. The settings are not yet a `StudyConfig`: the caller adds the paths the
    service owns and builds it."""
    data = _object(body, "body")
    for key in data:
        if key not in ("config", "config_file", "task"):
            raise RequestError(
                f"{key}: unknown field; a study is created from config, config_file and task", key
            )
    settings: dict[str, Any] = {}
    if "config_file" in data:
        path = _text(data["config_file"], "config_file")
        try:
            from_file = load_config_file(path)
        except ConfigError as error:
            raise RequestError(f"config_file: {error}", "config_file") from None
        owned = sorted(SERVICE_OWNED & set(from_file))
        if owned:
            raise RequestError(
                f"config_file: {path}: the service keeps the journal itself; remove {owned[0]!r}",
                "config_file",
            )
        settings.update(from_file)
    if "config" in data:
        settings.update(_settings(data["config"]))
    task = _inline_task(data["task"]) if data.get("task") is not None else None
    if task is not None:
        if settings.get("task"):
            raise RequestError(
                "task: give the task inline or as config.task (a name or a path), not both",
                "task",
            )
        if task.metric is not None and settings.get("metric") is None:
            settings["metric"] = task.metric
    elif not settings.get("task"):
        raise RequestError(
            "config.task: missing; give a built-in task name or a task file as config.task, "
            "or the task inline as task",
            "config.task",
        )
    return settings, task


@dataclass(frozen=True, slots=True)
class Patch:
    """A checked PATCH body: only what it names changes."""

    concurrency: int | None = None
    rate_limits: dict[str, float | None] = field(default_factory=dict)
    endpoint_rate_limits: dict[str, float | None] = field(default_factory=dict)
    budgets: dict[str, float | None] = field(default_factory=dict)
    new_candidate_share: float | None = None
    paused: bool | None = None
    drop: tuple[int, ...] = ()


def _rates(raw: Any, where: str) -> dict[str, float | None]:
    rates: dict[str, float | None] = {}
    for name, value in _object(raw, where).items():
        here = f"{where}.{name}"
        if name not in RATE_LIMIT_NAMES:
            raise RequestError(
                f"{here}: unknown limit; the limits are {', '.join(RATE_LIMIT_NAMES)}", here
            )
        value = _check_kind(value, ("number", "null"), here)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise RequestError(f"{here}: must be a positive number or null (got {value})", here)
        rates[name] = None if value is None else float(value)
    return rates


def parse_patch(body: Any) -> Patch:
    """Check a PATCH /v1/studies/{id} body whole. Candidate numbers in `drop` are checked
    against the study by the caller, also before anything changes."""
    data = _object(body, "body")
    known = (
        "concurrency",
        "rate_limits",
        "endpoint_rate_limits",
        "budgets",
        "new_candidate_share",
        "paused",
        "drop",
    )
    for key in data:
        if key not in known:
            raise RequestError(f"{key}: unknown field; a patch may hold {', '.join(known)}", key)
    concurrency = None
    if "concurrency" in data:
        concurrency = _check_kind(data["concurrency"], ("integer",), "concurrency")
        if not 1 <= concurrency <= _MAX_CONCURRENCY:
            raise RequestError(
                f"concurrency: must be from 1 to {_MAX_CONCURRENCY} (got {concurrency})",
                "concurrency",
            )
    budgets: dict[str, float | None] = {}
    for name, value in _object(data.get("budgets", {}), "budgets").items():
        where = f"budgets.{name}"
        if name not in BUDGET_NAMES:
            raise RequestError(
                f"{where}: unknown budget; the budgets are {', '.join(BUDGET_NAMES)}", where
            )
        kinds = ("integer", "null") if name in _COUNT_BUDGETS else ("number", "null")
        value = _check_kind(value, kinds, where)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise RequestError(f"{where}: must be a number >= 0 or null (got {value})", where)
        budgets[name] = value
    share = None
    if "new_candidate_share" in data:
        share = _check_kind(data["new_candidate_share"], ("number",), "new_candidate_share")
        if not 0 <= share < 1:
            raise RequestError(
                f"new_candidate_share: must be in [0, 1) (got {share})", "new_candidate_share"
            )
        share = float(share)
    paused = None
    if "paused" in data:
        paused = _check_kind(data["paused"], ("boolean",), "paused")
    drop: list[int] = []
    if "drop" in data:
        if not isinstance(data["drop"], list):
            raise RequestError("drop: expected a list of candidate numbers", "drop")
        for index, arm in enumerate(data["drop"]):
            drop.append(_check_kind(arm, ("integer",), f"drop[{index}]"))
    return Patch(
        concurrency=concurrency,
        rate_limits=_rates(data["rate_limits"], "rate_limits") if "rate_limits" in data else {},
        endpoint_rate_limits=(
            _rates(data["endpoint_rate_limits"], "endpoint_rate_limits")
            if "endpoint_rate_limits" in data
            else {}
        ),
        budgets=budgets,
        new_candidate_share=share,
        paused=paused,
        drop=tuple(drop),
    )
