"""The settings of a study: one frozen `StudyConfig`, from code, a TOML file or the command line.

A TOML file holds the same settings as the command line, under the field names of
`StudyConfig` (``budget_calls = 2000``), plus a ``[prices]`` table that extends the price list
(``[prices."my-model"] input = 0.5  output = 1.5``, USD per million tokens). Command-line flags
override the file. An unknown key is a `ConfigError` naming the key and the file, raised before
anything else happens. Reference: TOML v1.0.0, read with the standard library's `tomllib`.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.llm.endpoint import TRANSPORTS
from engine.propose import PROPOSAL_MODES
from engine.study.budgets import Price
from engine.study.settings import BudgetLimits, FailureLimits, ProposalPlan, StudySettings

__all__ = ["POLICIES", "SCORING_MODES", "StudyConfig", "load_config_file"]

POLICIES = ("lucb", "ttts", "halving", "ape-filter", "ucb", "uniform", "full")
SCORING_MODES = ("exec", "logprob")


@dataclass(frozen=True, slots=True)
class StudyConfig:
    """Everything that defines a study. Budgets of None are unlimited."""

    task: str = ""
    task_format: str | None = None
    # target (scoring) endpoint; no base_url = the in-process simulator
    model: str = "sim-1"
    base_url: str | None = None
    api_key_env: str | None = None
    # proposal endpoint; defaults to the target's
    proposal_model: str | None = None
    proposal_base_url: str | None = None
    proposal_api_key_env: str | None = None
    api: str = "chat"  # "chat" or "completions" for scoring and proposals
    transport: str = "aiohttp"  # HTTP client: "aiohttp", or "lean" (less memory per call)
    policy: str = "lucb"
    metric: str | None = None
    scoring: str = "exec"
    delta: float = 0.05
    epsilon: float | None = None  # None = 2 examples' worth (2 / scoring pool size)
    seed: int = 0
    # budgets
    budget_calls: int | None = None
    budget_proposal_calls: int | None = None
    budget_tokens: int | None = None
    budget_usd: float | None = None
    budget_seconds: float | None = None
    # throughput
    concurrency: int = 32
    rpm: float | None = None
    tpm: float | None = None
    # pools
    demo_size: int | None = None
    scoring_size: int | None = None
    test_size: int | None = None
    # proposals
    initial_candidates: int = 20
    candidates_per_call: int = 5
    demos_per_proposal: int = 5
    variant_rounds: int = 2
    variant_leaders: int = 3
    variants_per_leader: int = 3
    new_candidate_share: float = 0.25
    max_candidates: int = 200
    include_human: bool = False
    proposal_template: str = "forward"  # "forward", or "insert" (completions with suffix)
    templates: str | None = None  # a TOML/JSON file overriding the prompt templates
    duplicate_similarity: float = 0.9  # token-set Jaccard at which a proposal is a near copy
    max_instruction_chars: int = 400  # longer proposals are rejected
    scorer: str | None = None  # "module:function" (or "file.py:function"): a custom scorer
    # failures
    max_failures: int = 20
    max_failure_share: float = 0.1
    # state and output
    journal: str | None = None
    cache: str | None = None  # response cache file; None = .ape/cache.jsonl (shared by studies)
    no_cache: bool = False
    json_out: str | None = None
    # the in-process simulator
    sim_latency_s: float = 0.0
    # the in-process server when there is no base_url: "sim" (the simulator) or "local" (a
    # GGUF model run by llama.cpp, engine.local: a path or "smollm2")
    backend: str = "sim"
    local_model: str = "smollm2"
    local_threads: int | None = None
    prices: Mapping[str, Price] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad field."""
        if self.policy not in POLICIES:
            raise ConfigError(
                f"policy: unknown policy {self.policy!r}; choose one of {', '.join(POLICIES)}"
            )
        if self.scoring not in SCORING_MODES:
            raise ConfigError(f"scoring: unknown mode {self.scoring!r}; choose exec or logprob")
        if self.api not in ("chat", "completions"):
            raise ConfigError(f"api: must be 'chat' or 'completions' (got {self.api!r})")
        if self.transport not in TRANSPORTS:
            raise ConfigError(
                f"transport: must be one of {', '.join(TRANSPORTS)} (got {self.transport!r})"
            )
        if not 0 < self.delta < 1:
            raise ConfigError(f"delta: must be in (0, 1) (got {self.delta})")
        if self.epsilon is not None and not 0 <= self.epsilon < 1:
            raise ConfigError(f"epsilon: must be in [0, 1) (got {self.epsilon})")
        positive_ints = (
            "concurrency",
            "initial_candidates",
            "candidates_per_call",
            "demos_per_proposal",
            "variant_leaders",
            "variants_per_leader",
            "max_candidates",
            "max_instruction_chars",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1 (got {value!r})")
        for name in ("variant_rounds", "max_failures"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}: must be an integer >= 0 (got {value!r})")
        for name in (
            "demo_size",
            "scoring_size",
            "test_size",
            "budget_calls",
            "budget_proposal_calls",
            "budget_tokens",
        ):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ConfigError(f"{name}: must be an integer >= 0 or unset (got {value!r})")
        for name in ("budget_usd", "budget_seconds", "rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError(f"{name}: must be a number >= 0 or unset (got {value!r})")
        for name in ("new_candidate_share", "max_failure_share"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < 1:
                raise ConfigError(f"{name}: must be in [0, 1) (got {value!r})")
        if self.proposal_template not in PROPOSAL_MODES:
            raise ConfigError(
                f"proposal_template: must be one of {', '.join(PROPOSAL_MODES)} "
                f"(got {self.proposal_template!r})"
            )
        similarity = self.duplicate_similarity
        if (
            isinstance(similarity, bool)
            or not isinstance(similarity, int | float)
            or not (0 < similarity <= 1)
        ):
            raise ConfigError(f"duplicate_similarity: must be in (0, 1] (got {similarity!r})")
        if self.scorer is not None and (
            not isinstance(self.scorer, str) or ":" not in self.scorer.strip(":")
        ):
            raise ConfigError(
                f"scorer: must be 'module:function' or 'file.py:function' (got {self.scorer!r})"
            )
        if self.sim_latency_s < 0:
            raise ConfigError(f"sim_latency_s: must be >= 0 (got {self.sim_latency_s})")
        if self.backend not in ("sim", "local"):
            raise ConfigError(f"backend: must be 'sim' or 'local' (got {self.backend!r})")
        if self.local_threads is not None and (
            isinstance(self.local_threads, bool)
            or not isinstance(self.local_threads, int)
            or self.local_threads < 1
        ):
            raise ConfigError(
                f"local_threads: must be an integer >= 1 (got {self.local_threads!r})"
            )
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_url: must start with http:// or https:// (got {self.base_url!r})"
            )

    def replace(self, **changes: Any) -> StudyConfig:
        return dataclasses.replace(self, **changes)

    def study_settings(self) -> StudySettings:
        """The groups of settings the running study reads."""
        return StudySettings(
            policy=self.policy,
            concurrency=self.concurrency,
            budgets=BudgetLimits(
                scoring_calls=self.budget_calls,
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
        )

    def budget_limits(self) -> dict[str, float | None]:
        return {
            "scoring_calls": self.budget_calls,
            "proposal_calls": self.budget_proposal_calls,
            "tokens": self.budget_tokens,
            "usd": self.budget_usd,
            "seconds": self.budget_seconds,
        }

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON (for the journal header); holds no secrets, only env names."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "prices"}
        data["prices"] = {
            model: {"input": p.input_per_million, "output": p.output_per_million}
            for model, p in self.prices.items()
        }
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "journal") -> StudyConfig:
        return cls(**_checked(dict(data), where))


def _field_names() -> frozenset[str]:
    return frozenset(f.name for f in fields(StudyConfig))


def _prices(raw: Any, where: str) -> dict[str, Price]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [prices] must be a table of models")
    prices: dict[str, Price] = {}
    for model, entry in raw.items():
        if not isinstance(entry, Mapping) or set(entry) - {"input", "output"}:
            raise ConfigError(
                f"{where}: prices.{model} must be a table with 'input' and 'output' "
                "(USD per million tokens)"
            )
        try:
            prices[str(model)] = Price(
                float(entry.get("input", 0.0)), float(entry.get("output", 0.0))
            )
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: prices.{model}: input and output must be numbers"
            ) from None
    return prices


def _checked(data: dict[str, Any], where: str) -> dict[str, Any]:
    names = _field_names()
    for key in data:
        if key not in names:
            raise ConfigError(
                f"{where}: unknown setting {key!r}; known settings are {', '.join(sorted(names))}"
            )
    if "prices" in data:
        data["prices"] = _prices(data["prices"], where)
    return data


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML file, checked against `StudyConfig`'s fields (not yet merged)."""
    file = Path(path)
    where = f"config file {str(file)!r}"
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it ({error.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None
    return _checked(data, where)
