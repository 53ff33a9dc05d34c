"""The settings of a study: one frozen `StudyConfig`, from code, a TOML file, the command line
or a service request, checked once where it enters.

A TOML file holds the same settings as the command line, under the field names of
`StudyConfig` (``budget_scoring_calls = 2000``), plus a ``[prices]`` table that extends the
price list (``[prices."my-model"] input = 0.5  output = 1.5``, USD per million tokens), and
``[[endpoints]]`` / ``[[proposal_endpoints]]`` tables for a role that runs on several endpoints
(`EndpointSettings`).
Command-line flags override the file. The field types carry the ranges (``Annotated[int,
Meta(ge=1)]``), the choices (a ``Literal`` made from each registry: `POLICIES`, `TRANSPORTS`,
`PROPOSAL_MODES`, `METRICS`) and the defaults; the command line, the service and
/openapi.json read them from here. A bad value is a `ConfigError` naming its source and field
(``config file 'x.toml': budget_usd: Expected `float` >= 0.0, got -1``) raised before anything
else happens. Reference: TOML v1.0.0, read with the standard library's `tomllib`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta

from engine.decoding import Invalid, convert, read_text
from engine.errors import ConfigError
from engine.llm.endpoint import TRANSPORTS
from engine.propose import PROPOSAL_MODES
from engine.search.factory import POLICIES
from engine.study.budgets import Price
from engine.study.settings import (
    BUDGET_NAMES,
    BudgetLimits,
    FailureLimits,
    ProposalPlan,
    StudySettings,
)
from engine.task import METRICS

__all__ = [
    "MAX_CONCURRENCY",
    "MAX_COUNT",
    "RENAMED",
    "Concurrency",
    "Count",
    "EndpointName",
    "EndpointSettings",
    "Rate",
    "Share",
    "StudyConfig",
    "load_config_file",
]

MAX_COUNT = 2**53  # the largest integer a JSON number (a double) holds exactly
MAX_CONCURRENCY = 100_000
MAX_RATE = 1e9  # requests or tokens per minute
MIN_RATE = 0.01  # one per 100 minutes: below it a limit stalls a study rather than paces it

Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
Positive = Annotated[int, Meta(ge=1, le=MAX_COUNT)]
Amount = Annotated[float, Meta(ge=0, le=MAX_COUNT)]  # dollars, seconds: finite, >= 0
Rate = Annotated[float, Meta(ge=MIN_RATE, le=MAX_RATE)]
Share = Annotated[float, Meta(ge=0, lt=1)]
Concurrency = Annotated[int, Meta(ge=1, le=MAX_CONCURRENCY)]
Probability = Annotated[float, Meta(gt=0, lt=1)]
Tolerance = Annotated[float, Meta(ge=0, lt=1)]
Similarity = Annotated[float, Meta(gt=0, le=1)]
Timeout = Annotated[float, Meta(gt=0, le=86_400)]  # seconds, up to a day
CacheSize = Annotated[float, Meta(ge=1, le=1e9)]  # megabytes
Url = Annotated[str, Meta(pattern=r"^https?://", description="an http:// or https:// URL")]
Name = Annotated[str, Meta(min_length=1)]
Scorer = Annotated[
    str, Meta(pattern=r"[^:].*:.*[^:]", description="module:function or file.py:function")
]

EndpointName = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$", description="an endpoint's name")
]
Weight = Annotated[float, Meta(gt=0, le=1e6)]

Api = Literal["chat", "completions"]
ScoringMode = Literal["exec", "logprob", "judge"]
ChatFormat = Literal["plain", "output-only"]
Backend = Literal["sim", "local"]
Protocol = Literal["openai", "anthropic"]
if TYPE_CHECKING:
    PolicyName = str
    TransportName = str
    ProposalMode = str
    MetricName = str
else:  # the choices of each registry, written once where the registry is
    PolicyName = Literal[tuple(POLICIES)]
    TransportName = Literal[TRANSPORTS]
    ProposalMode = Literal[PROPOSAL_MODES]
    MetricName = Literal[METRICS]

#: Settings that changed name: a journal written before still resumes; elsewhere the old name
#: is refused with the new one.
RENAMED = {"budget_calls": "budget_scoring_calls"}

_DECODING: ContextVar[bool] = ContextVar("_DECODING", default=False)


class EndpointSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One endpoint of a role that runs on several (``[[endpoints]]``, ``[[proposal_endpoints]]``
    tables; a repeated ``--base-url``): its URL and what it has of its own. A field left out is
    the study's (``model``, ``api_key_env`` or ``api_key_file``, ``headers``, ``rpm`` and
    ``tpm`` -- each endpoint's own limit --, ``timeout_s``). `weight` shares the calls in flight
    (2: twice those of an endpoint of weight 1); `name` is its name on screen and in the
    controls (default: the role and its place, ``target-2``)."""

    base_url: Url
    name: EndpointName | None = None
    model: Name | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    headers: dict[str, str] | None = None
    rpm: Rate | None = None
    tpm: Rate | None = None
    timeout_s: Timeout | None = None
    weight: Weight = 1.0


class StudyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything that defines a study. Budgets of None are unlimited. Built by keyword, it is
    checked (and its values decoded: a price table given as JSON becomes `Price` values) as if
    read from a file."""

    task: str = ""
    task_format: str | None = None
    input_field: Name | None = None  # the key (column) of the input; None = "input"
    output_field: Name | None = None  # the key (column) of the output; None = "output"
    # target (scoring) endpoint; no base_url = the in-process simulator
    model: Name = "sim-1"
    base_url: Url | None = None  # none: $OPENAI_BASE_URL, else the in-process `backend`
    api_key_env: str | None = None  # none: $OPENAI_API_KEY (ANTHROPIC_API_KEY) when set
    api_key_file: str | None = None  # or a file holding only the key
    # extra HTTP headers (Azure's api-key); a value "env:VAR" or "file:PATH" is read from there
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    protocol: Protocol = "openai"  # or "anthropic": the Messages API (POST /v1/messages)
    timeout_s: Timeout = 120.0  # seconds a call may take before it is retried
    # proposal endpoint; defaults to the target's
    proposal_model: Name | None = None
    proposal_base_url: Url | None = None
    proposal_api_key_env: str | None = None
    proposal_api_key_file: str | None = None
    proposal_headers: dict[str, str] | None = None  # none: the target's, on the same endpoint
    proposal_timeout_s: Timeout | None = None  # None = timeout_s
    # several endpoints for a role, instead of base_url / proposal_base_url (docs/endpoints.md)
    endpoints: list[EndpointSettings] = msgspec.field(default_factory=list)
    proposal_endpoints: list[EndpointSettings] = msgspec.field(default_factory=list)
    api: Api = "chat"  # for scoring and proposals
    transport: TransportName = "aiohttp"  # HTTP client; "lean": less memory per call
    policy: PolicyName = "paired"
    metric: MetricName | None = None  # None = the task's own
    scoring: ScoringMode = "exec"
    delta: Probability = 0.05
    epsilon: Tolerance | None = None  # None = 2 examples' worth (2 / scoring pool size)
    seed: Count = 0
    # budgets: budget_<name> for each name of engine.study.settings.BUDGET_NAMES
    budget_scoring_calls: Count | None = None
    budget_proposal_calls: Count | None = None
    budget_tokens: Count | None = None
    budget_usd: Amount | None = None
    budget_seconds: Amount | None = None
    # throughput
    concurrency: Concurrency = 32
    rpm: Rate | None = None
    tpm: Rate | None = None
    late_binding: bool = True
    group_by_candidate: bool = True
    # pools
    demo_size: Count | None = None
    scoring_size: Count | None = None
    test_size: Count | None = None
    # proposals (engine.study.settings.ProposalPlan has the same names)
    initial_candidates: Count = 20  # 0: only your own candidates (and the human one)
    candidates_per_call: Positive = 5
    demos_per_proposal: Positive = 5
    variant_rounds: Count = 2
    variant_leaders: Positive = 3
    variants_per_leader: Positive = 3
    new_candidate_share: Share = 0.25
    max_candidates: Positive = 200
    include_human: bool = False
    proposal_template: ProposalMode = "forward"  # or "insert" (completions with suffix)
    templates: str | None = None  # a TOML/JSON file overriding the prompt templates
    duplicate_similarity: Similarity = 0.9  # token-set Jaccard at which a proposal is a copy
    max_instruction_chars: Positive = 400  # longer proposals are rejected
    scorer: Scorer | None = None  # "module:function" (or "file.py:function"): a custom scorer
    # your own candidates: a file, one instruction a line or JSONL {"instruction", "name"}
    candidates: str | None = None
    # how the target is asked (engine.study.scoring): demos before the input, the chat format
    scoring_demos: Count | None = None  # None: 3 on chat, 0 on completions (prompting.py)
    chat_format: ChatFormat = "output-only"
    answer_chars: Annotated[int, Meta(ge=0, le=10_000)] = 200  # of each answer kept in events
    # a model as judge (scoring = "judge", engine.study.judging): its rubric and its endpoint
    judge_rubric: Name | None = None  # a ready rubric's name or a rubric file
    judge_model: Name | None = None
    judge_base_url: Url | None = None
    judge_api_key_env: str | None = None
    # failures (engine.study.settings.FailureLimits)
    max_failures: Count = 20
    max_failure_share: Share = 0.1
    # state and output
    journal: str | None = None
    cache: str | None = None  # response cache file; None = .ape/cache.sqlite3 (shared by studies)
    cache_max_mb: CacheSize = 2048.0  # the oldest answers go past this size
    no_cache: bool = False
    json_out: str | None = None
    # the in-process simulator
    sim_latency_s: Amount = 0.0
    # the in-process server when there is no base_url: "sim" (the simulator) or "local" (a
    # GGUF model run by llama.cpp, engine.local: a path or "smollm2")
    # (none: the simulator for a built-in task; a task file needs an endpoint or a backend)
    backend: Backend | None = None
    local_model: Name = "smollm2"
    local_threads: Positive | None = None
    prices: dict[str, Price] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if _DECODING.get():
            return  # decoded: msgspec has checked every field already
        try:
            data = msgspec.to_builtins(self)
        except TypeError as error:
            raise ConfigError(f"StudyConfig: {error}") from None
        try:
            checked = _decode(data)
        except Invalid as error:
            raise ConfigError(str(error)) from None
        for name in self.__struct_fields__:
            msgspec.structs.force_setattr(self, name, getattr(checked, name))

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> StudyConfig:
        """Settings as decoded JSON or TOML; raises `Invalid` naming the field."""
        return _decode(data)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "journal") -> StudyConfig:
        """The settings of a journal header (`to_json()` output), written by this or an earlier
        version (old setting names are read under their new ones)."""
        settings = dict(data)
        for old, new in RENAMED.items():
            if old in settings and new not in settings:
                settings[new] = settings.pop(old)
        try:
            return _decode(settings)
        except Invalid as error:
            raise ConfigError(f"{where}: {error}") from None

    def replace(self, **changes: Any) -> StudyConfig:
        """A copy with `changes`, checked like a new config."""
        return StudyConfig(**{**msgspec.structs.asdict(self), **changes})

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON (for the journal header); holds no secrets, only env names."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    def budget_limits(self) -> dict[str, float | None]:
        limits: dict[str, float | None] = {
            name: getattr(self, f"budget_{name}") for name in BUDGET_NAMES
        }
        return limits

    def study_settings(self) -> StudySettings:
        """The groups of settings the running study reads."""
        return StudySettings(
            policy=self.policy,
            concurrency=self.concurrency,
            late_binding=self.late_binding,
            group_by_candidate=self.group_by_candidate,
            budgets=BudgetLimits(
                scoring_calls=self.budget_scoring_calls,
                proposal_calls=self.budget_proposal_calls,
                tokens=self.budget_tokens,
                usd=self.budget_usd,
                seconds=self.budget_seconds,
            ),
            proposals=ProposalPlan(
                initial_candidates=self.initial_candidates,
                candidates_per_call=self.candidates_per_call,
                variant_rounds=self.variant_rounds,
                variant_leaders=self.variant_leaders,
                variants_per_leader=self.variants_per_leader,
                new_candidate_share=self.new_candidate_share,
                max_candidates=self.max_candidates,
                include_human=self.include_human,
            ),
            failures=FailureLimits(self.max_failures, self.max_failure_share),
            answer_chars=self.answer_chars,
        )


def _decode(data: Mapping[str, Any]) -> StudyConfig:
    token = _DECODING.set(True)
    try:
        config: StudyConfig = convert(dict(data), StudyConfig)
        return config
    except Invalid as error:
        raise renamed(error) from None
    finally:
        _DECODING.reset(token)


def renamed(error: Invalid) -> Invalid:
    """`error`, saying the new name when it refuses an old one."""
    name = error.path.rpartition(".")[2]
    if name in RENAMED and error.problem.startswith("unknown field"):
        return Invalid(error.path, f"renamed; use {RENAMED[name]}")
    return error


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The settings a TOML file sets, checked against `StudyConfig`'s fields (not yet merged
    with the command line's): each key the file holds, with its decoded value."""
    file = Path(path)
    where = f"config file {str(file)!r}"
    text = read_text(file, where)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None
    try:
        config = _decode(data)
    except Invalid as error:
        raise ConfigError(f"{where}: {error}") from None
    return {name: getattr(config, name) for name in data}
