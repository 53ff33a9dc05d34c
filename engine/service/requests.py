"""The service's request bodies, as typed decoders: checked whole before anything changes.

A body is decoded from its bytes into its type at once (msgspec; /openapi.json is generated
from the same types): `CreateStudy` for POST /v1/studies, `PatchStudy` for PATCH
/v1/studies/{id}. A refusal is a `RequestError` naming the field by its path
(``config.budget_usd``, ``task.examples[3].output``, ``rate_limits.requests_per_minute``),
which the app answers with a 4xx ``{"error": {"message", "field"}}``; nothing has changed.
The study settings are the settings by flat name (`engine.settings.SETTINGS`), each optional
here, less those declared the operator's (`SERVICE_OWNED`: the journal, the cache, endpoints'
URLs, keys, limits and timeouts, a custom scorer, result files) and plus the names of the
operator's endpoints (``endpoint``, ``proposal_endpoint``); a request that gives an owned field
is told why it cannot. A PATCH takes the same types and ranges (concurrency, budgets, rates, the
share), read off the same fields.
"""

from __future__ import annotations

import hashlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import orjson
from msgspec import UNSET, Meta, UnsetType

from engine.decoding import Invalid, decode_json
from engine.errors import ConfigError, EngineError
from engine.settings import RENAMED, SETTINGS
from engine.settings.checks import Check
from engine.settings.groups import MetricName
from engine.settings.roles import EndpointName
from engine.study.settings import MAX_COUNT
from engine.task.fields import text_of
from engine.task.paths import file_stem, inside

__all__ = [
    "SERVICE_OWNED",
    "CreateStudy",
    "EndpointName",
    "InlineCandidate",
    "InlineTask",
    "Patch",
    "PatchStudy",
    "RequestError",
    "config_field",
    "parse_create",
    "parse_patch",
    "write_inline_candidates",
    "write_inline_task",
]

#: Settings a request may not give, and why: the service and its operator own them.
SERVICE_OWNED: dict[str, str] = {
    one.flat: one.why or "the service's operator sets it"
    for one in SETTINGS
    if one.owner == "operator"
}
_BY_PATH = {one.path: one for one in SETTINGS}
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
if TYPE_CHECKING:
    Rate = float | None
    Concurrency = int
    Share = float
else:  # the types and ranges of the settings a PATCH changes, as their fields declare them
    Rate = _BY_PATH["target.rpm"].type
    Concurrency = _BY_PATH["throughput.concurrency"].type
    Share = _BY_PATH["proposals.new_candidate_share"].type


class RequestError(EngineError):
    """A request the service refuses: `status` is the HTTP status, `field` what it names."""

    def __init__(self, message: str, field: str | None = None, *, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def _optional_fields(name: str, fields: dict[str, Any], shown: dict[str, Any] | None = None) -> Any:
    """A Struct type of `fields` (name -> type), each optional (UNSET when not given); `shown`
    are defaults for the JSON Schema only (what applies when a field is left out)."""

    def optional(key: str, kind: Any) -> Any:
        kind = typing.Union[kind, UnsetType]  # noqa: UP007 (`kind` is a runtime value)
        if shown is None or key not in shown:
            return kind
        return Annotated[kind, Meta(extra_json_schema={"default": shown[key]})]

    return msgspec.defstruct(
        name,
        [(key, optional(key, kind), UNSET) for key, kind in fields.items()],
        kw_only=True,
        forbid_unknown_fields=True,
        module=__name__,
    )


_SETTINGS = {one.flat: one for one in SETTINGS if one.owner == "user"}

if TYPE_CHECKING:
    RequestSettings = msgspec.Struct
    BudgetChanges = msgspec.Struct
else:
    # named "StudySettings" in /openapi.json: the settings a request may give
    RequestSettings = _optional_fields(
        "StudySettings",
        {
            "endpoint": Annotated[
                EndpointName | Annotated[list[EndpointName], Meta(min_length=1)] | None,
                Meta(
                    description="the operator's endpoint the study runs on, or a list of "
                    "endpoints serving the same model (the calls are spread over them); none: "
                    "the in-process simulator, or local model"
                ),
            ],
            "proposal_endpoint": Annotated[
                EndpointName | Annotated[list[EndpointName], Meta(min_length=1)] | None,
                Meta(description="for proposals, one or a list (default: endpoint)"),
            ],
            **{name: one.type for name, one in _SETTINGS.items()},
        },
        {name: msgspec.to_builtins(one.default) for name, one in _SETTINGS.items()},
    )
    BudgetChanges = _optional_fields(
        "BudgetChanges",
        {one.name: one.type for one in SETTINGS if one.group == "budgets" and one.live},
    )

Text = Annotated[str, Meta(pattern=r"\S", description="not blank")]
TaskName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]


FieldName = Annotated[str, Meta(pattern=r"\S", max_length=200, description="a field's name")]
#: A structured answer: a JSON object.
Answer = Annotated[dict[str, Any], Meta(min_length=1)]
#: An input of named fields: ``{"title": "...", "body": "..."}``.
NamedFields = Annotated[dict[FieldName, str], Meta(min_length=1, max_length=100)]


class Example(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One example of an inline task: its input (a text, or an object of named fields), its
    expected output(s), and its choices if any."""

    input: str | NamedFields
    #: text, a JSON object (a structured answer), or a list of accepted ones
    output: Text | Answer | Annotated[list[Text | Answer], Meta(min_length=1)]
    choices: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)] | None = None

    @property
    def outputs(self) -> list[str]:
        """The accepted outputs as the task file reads them (an object as JSON text)."""
        listed = self.output if isinstance(self.output, list) else [self.output]
        return [one if isinstance(one, str) else text_of(one) for one in listed]


class InlineTask(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A task given in the request; the service writes it as a file the journal names."""

    name: TaskName
    examples: Annotated[list[Example], Meta(min_length=1)]
    human_instruction: Text | None = None
    description: str | None = None
    metric: MetricName | None = None
    checks: Annotated[list[Check], Meta(min_length=1, max_length=100)] | None = None


class InlineCandidate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One of the user's own candidates: an instruction, and a name it goes by."""

    instruction: Annotated[str, Meta(pattern=r"\S", max_length=20_000)]
    name: Annotated[str, Meta(max_length=200)] = ""


class CreateStudy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /v1/studies: the settings, the task by name (config.task: built-in, or from the
    operator's task folder) or inline (task), and the user's own candidates inline
    (candidates)."""

    config: RequestSettings | None = None
    task: InlineTask | None = None
    candidates: Annotated[list[InlineCandidate], Meta(min_length=1, max_length=10_000)] | None = (
        None
    )


class RateLimits(msgspec.Struct, forbid_unknown_fields=True):
    """Requests and tokens per minute; null lifts the limit."""

    requests_per_minute: Rate | UnsetType = UNSET
    tokens_per_minute: Rate | UnsetType = UNSET
    endpoint: (
        Annotated[
            EndpointName,
            Meta(
                description="only this endpoint of the study (as the snapshot's limiters name "
                "it); left out: every endpoint"
            ),
        ]
        | UnsetType
    ) = UNSET


class PatchStudy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """PATCH /v1/studies/{id}: only what it names changes."""

    concurrency: Concurrency | UnsetType = UNSET
    rate_limits: (
        Annotated[
            RateLimits,
            Meta(
                description="this study's own cap on its endpoints (null: no cap of its own; "
                "it gets its fair share of the endpoint's limit)"
            ),
        ]
        | UnsetType
    ) = UNSET
    endpoint_rate_limits: (
        Annotated[
            RateLimits,
            Meta(description="the limit of the study's endpoints, shared by every study on them"),
        ]
        | UnsetType
    ) = UNSET
    budgets: BudgetChanges | UnsetType = UNSET
    new_candidate_share: Share | UnsetType = UNSET
    paused: bool | UnsetType = UNSET
    drop: list[Count] = msgspec.field(default_factory=list)
    stop_search: Annotated[
        bool,
        Meta(description="true: stop the search now and evaluate the leader on the test pool"),
    ] = False


@dataclass(frozen=True, slots=True)
class Patch:
    """A checked PATCH body as the manager applies it: only what it names changes."""

    concurrency: int | None = None
    # requests_per_minute, tokens_per_minute (float | None), and endpoint (a name) when given
    rate_limits: dict[str, Any] = field(default_factory=dict)
    endpoint_rate_limits: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, float | None] = field(default_factory=dict)
    new_candidate_share: float | None = None
    paused: bool | None = None
    drop: tuple[int, ...] = ()
    stop_search: bool = False


def _decode(raw: bytes, kind: Any) -> Any:
    try:
        return decode_json(raw, kind)
    except Invalid as error:
        path, problem = error.path, error.problem
        name = path.removeprefix("config.")
        if name in SERVICE_OWNED and problem.startswith("unknown field"):
            problem = SERVICE_OWNED[name]
        elif path == "config_file" and problem.startswith("unknown field"):
            problem = (
                "the service reads no settings file of a request's; send the settings as config"
            )
        elif name in RENAMED and problem.startswith("unknown field"):
            problem = f"renamed; use {RENAMED[name]}"
        raise RequestError(f"{path or 'body'}: {problem}", path or "body") from None


def _given(value: msgspec.Struct | UnsetType) -> dict[str, Any]:
    """The fields a request gave (decoded values), by name."""
    if isinstance(value, UnsetType):
        return {}
    given = ((name, getattr(value, name)) for name in value.__struct_fields__)
    return {name: item for name, item in given if item is not UNSET}


def config_field(error: ConfigError | EngineError, prefix: str = "config") -> str | None:
    """The setting a `ConfigError` message starts with (``"policy: unknown ..."``), as a field."""
    name = str(error).partition(":")[0]
    return f"{prefix}.{name}" if name in _SETTINGS else None


def parse_create(raw: bytes) -> tuple[dict[str, Any], InlineTask | None]:
    """The settings and the inline task of a POST /v1/studies body. The settings are not yet a
    `StudyConfig`: the caller resolves the names in them (endpoints, the task) and builds it."""
    body: CreateStudy = _decode(raw, CreateStudy)
    settings: dict[str, Any] = {}
    if body.config is not None:
        settings.update(_given(body.config))
    if body.candidates is not None:
        # written to a file by the manager (write_inline_candidates), as an inline task is
        settings["candidates"] = list(body.candidates)
    task = body.task
    if task is not None:
        _check_examples(task)
        if settings.get("task"):
            raise RequestError(
                "task: give the task inline or as config.task (a name or a path), not both",
                "task",
            )
        if task.metric is not None and settings.get("metric") is None:
            settings["metric"] = task.metric
        if task.checks is not None and settings.get("checks") is None:
            settings["checks"] = msgspec.to_builtins(task.checks)
    elif not settings.get("task"):
        raise RequestError(
            "config.task: missing; give a built-in task name or a task file as config.task, "
            "or the task inline as task",
            "config.task",
        )
    return settings, task


def _check_examples(task: InlineTask) -> None:
    """What the types cannot say: outputs among the choices, choices for all or none."""
    with_choices = 0
    for index, example in enumerate(task.examples):
        if example.choices is None:
            continue
        with_choices += 1
        missing = [output for output in example.outputs if output not in example.choices]
        if missing:
            where = f"task.examples[{index}].output"
            raise RequestError(f"{where}: {missing[0]!r} is not one of the choices", where)
    if 0 < with_choices < len(task.examples):
        raise RequestError(
            "task.examples: give choices for every example or for none", "task.examples"
        )
    if len({isinstance(example.input, dict) for example in task.examples}) > 1:
        raise RequestError(
            "task.examples: give every example's input the same way (all text, or all objects "
            "of named fields)",
            "task.examples",
        )
    first: dict[str, int] = {}
    for index, example in enumerate(task.examples):
        key = example.input if isinstance(example.input, str) else orjson.dumps(example.input)
        before = first.setdefault(str(key), index)
        earlier = task.examples[before]
        if before != index and set(earlier.outputs) != set(example.outputs):
            where = f"task.examples[{index}]"
            raise RequestError(
                f"{where}: the same input as task.examples[{before}] with other outputs; keep "
                "one, or give both outputs as a list in one example",
                where,
            )


def parse_patch(raw: bytes) -> Patch:
    """Check a PATCH /v1/studies/{id} body whole. Candidate numbers in `drop` are checked
    against the study by the caller, also before anything changes."""
    body: PatchStudy = _decode(raw, PatchStudy)
    return Patch(
        concurrency=None if isinstance(body.concurrency, UnsetType) else body.concurrency,
        rate_limits=_given(body.rate_limits),
        endpoint_rate_limits=_given(body.endpoint_rate_limits),
        budgets=_given(body.budgets),
        new_candidate_share=(
            None if isinstance(body.new_candidate_share, UnsetType) else body.new_candidate_share
        ),
        paused=None if isinstance(body.paused, UnsetType) else body.paused,
        drop=tuple(body.drop),
        stop_search=body.stop_search,
    )


def write_inline_candidates(candidates: list[InlineCandidate], folder: Path) -> Path:
    """Write inline candidates as a JSONL candidates file under `folder`, named by its content
    (the study's journal names the file); duplicates are refused when the study is prepared."""
    lines = [orjson.dumps({"instruction": c.instruction, "name": c.name}) for c in candidates]
    body = b"\n".join(lines) + b"\n"
    path = folder / f"candidates-{hashlib.sha256(body).hexdigest()[:12]}.jsonl"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(body)
        temporary.replace(path)
    return path


def write_inline_task(task: InlineTask, folder: Path) -> Path:
    """Write an inline task as a BIG-Bench `task.json` (the format that carries a name and a
    human instruction) under `folder`, named by its content so a repeat reuses the file; the
    study's journal names this file, so a resumed study finds its task again."""
    if any(isinstance(example.input, dict) for example in task.examples):
        return _write_task_file(task, folder)
    multiple_choice = any(example.choices is not None for example in task.examples)
    examples: list[dict[str, Any]] = []
    for example in task.examples:
        if example.choices is not None:
            scores = {c: int(c in example.outputs) for c in example.choices}
            examples.append({"input": example.input, "target_scores": scores})
        else:
            examples.append({"input": example.input, "target": example.outputs})
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
    return _written(task.name, body, folder)


def _written(name: str, body: bytes, folder: Path) -> Path:
    """`body` as ``<folder>/<name>-<digest>/task.json`` (kept when it is there already)."""
    digest = hashlib.sha256(body).hexdigest()[:12]
    path = inside(folder, f"{file_stem(name)}-{digest}") / "task.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(body + b"\n")
        temporary.replace(path)
    return path


def _write_task_file(task: InlineTask, folder: Path) -> Path:
    """An inline task whose inputs have named fields, as a task file (the "task" format:
    BIG-Bench's takes text inputs only)."""
    document: dict[str, Any] = {
        "name": task.name,
        "human_instruction": task.human_instruction,
        "description": task.description,
        "examples": [
            {
                "input": example.input,
                "output": example.outputs,
                **({"choices": example.choices} if example.choices is not None else {}),
            }
            for example in task.examples
        ],
    }
    document = {key: value for key, value in document.items() if value is not None}
    return _written(task.name, orjson.dumps(document, option=orjson.OPT_INDENT_2), folder)
