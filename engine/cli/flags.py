"""The command line's flags for the study settings, made from `StudyConfig`'s fields.

A flag is its field's name (``--budget-scoring-calls`` sets ``budget_scoring_calls``); its type,
choices and shown default come from the field, its help from `HELP`. `run` offers every setting
(`run` groups them as below), `resume` those a journal may change. The values are checked once,
by `StudyConfig`, and a bad one is named by its flag.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from engine.decoding import Invalid
from engine.errors import ConfigError
from engine.study.config import StudyConfig

__all__ = ["GROUPS", "HELP", "add_setting_flags", "checked_config", "flag_of", "given_settings"]

#: Help of each setting's flag, by field, in the groups `ape-engine run --help` shows.
GROUPS: dict[str, dict[str, str]] = {
    "task": {
        "task": "a built-in task name or a task file (JSONL, CSV, instruction induction)",
        "task_format": "the task file's format when its extension does not say",
        "input_field": "the key (or CSV column) of the input (input)",
        "output_field": "the key (or CSV column) of the output (output)",
    },
    "endpoints (no --base-url: $OPENAI_BASE_URL, else the simulator for a built-in task)": {
        "model": "target model that executes instructions",
        "base_url": "OpenAI-compatible base URL, e.g. http://host:8000/v1; repeat it for several "
        "endpoints of the model (replicas: calls are spread over them, --rpm and --tpm are each "
        "one's limit)",
        "api_key_env": "name of the environment variable with the key ($OPENAI_API_KEY if set)",
        "api_key_file": "or a file holding only the key",
        "headers": "extra HTTP header NAME=VALUE (repeatable); VALUE env:VAR or file:PATH is "
        "read from there (Azure: api-key=env:AZURE_OPENAI_API_KEY)",
        "protocol": "openai (/chat/completions) or anthropic (the Messages API)",
        "timeout_s": "seconds a call may take before it is retried",
        "proposal_model": "model that proposes instructions (= --model)",
        "proposal_base_url": "its base URL (= --base-url); repeatable too",
        "proposal_api_key_env": "environment variable with its key (= --api-key-env)",
        "proposal_api_key_file": "file with its key (= --api-key-file)",
        "proposal_headers": "its extra headers, NAME=VALUE (= --header)",
        "proposal_timeout_s": "seconds a proposal call may take (= --timeout)",
        "api": "API to call",
        "transport": "HTTP client: aiohttp, or lean (HTTP/1.1, about half the memory per call)",
        "backend": "without --base-url: the simulator (sim; a task file must ask for it), or a "
        "local GGUF model (local)",
        "local_model": "the local model's .gguf file, or smollm2",
        "local_threads": "its CPU threads",
    },
    "search": {
        "policy": "scheduler policy",
        "metric": "override the task's metric",
        "scoring": "reward: execution accuracy, log-probability, or a judge model's verdict",
        "scorer": "custom scorer: async (instruction, example, client) -> float in [0, 1]",
        "scoring_demos": "demos of the demo pool before each input (chat: as turns; "
        "default 3 on chat, 0 on completions)",
        "chat_format": "chat scoring: output-only (a system message asks for the output alone)",
        "answer_chars": "characters of each model answer kept in the journal and events",
        "judge_rubric": "judge scoring: a ready rubric (truthful_informative) or a rubric file",
        "judge_model": "the judge's model (= --model)",
        "judge_base_url": "its base URL (= --base-url)",
        "judge_api_key_env": "environment variable with its key (= --api-key-env)",
        "delta": "error probability of the pick",
        "epsilon": "tolerance of the pick (2 / pool size)",
        "seed": "seed of pools, proposals and policy",
        "demo_size": "examples in the demonstration pool",
        "scoring_size": "examples in the scoring pool (200)",
        "test_size": "examples in the test pool (100)",
    },
    "proposals": {
        "candidates": "your own candidates: one instruction a line, or JSONL {instruction, name}",
        "initial_candidates": "first batch of proposed candidates (0: only your own)",
        "candidates_per_call": "candidates asked of each proposal call",
        "demos_per_proposal": "demonstrations shown to each proposal call",
        "variant_rounds": "rounds of leader variants",
        "variant_leaders": "leaders varied in each round",
        "variants_per_leader": "variants of each leader",
        "variants": "what a variant round writes: resample (rewordings, the paper's), reflect "
        "(revisions that read the parent's wrong answers), or both (the round split between them)",
        "reflection_errors": "wrong answers a reflection sees (and half as many right ones)",
        "parents": "whose variants a round writes: leaders (by mean), or pareto (the best leader "
        "and parents sampled from the per-example Pareto front)",
        "merge": "each variant round also merges two parents that win on different examples",
        "new_candidate_share": "share of the scoring budget kept for new candidates",
        "max_candidates": "most candidates a study holds",
        "include_human": "also search over the task's human instruction",
        "proposal_template": "forward, or insert (completions with suffix)",
        "templates": "TOML/JSON file of prompt templates",
        "duplicate_similarity": "token-set Jaccard at which a proposal counts as a near copy",
        "max_instruction_chars": "longer proposals are rejected",
    },
    "budgets (all optional; the first reached stops)": {
        "budget_scoring_calls": "scoring calls",
        "budget_proposal_calls": "proposal calls",
        "budget_usd": "dollars",
        "budget_tokens": "tokens",
        "budget_seconds": "wall-clock seconds",
    },
    "failures (the study stops past the larger of the two)": {
        "max_failures": "calls that failed for good",
        "max_failure_share": "share of the calls so far that failed for good",
    },
    "throughput": {
        "concurrency": "calls in flight",
        "rpm": "requests per minute",
        "tpm": "tokens per minute",
        "late_binding": "choose each pull only when its call can be sent (at the rate limit)",
        "group_by_candidate": "send the pulls chosen together candidate by candidate (prefix "
        "caches of the servers)",
    },
    "state and output": {
        "journal": "journal file (.ape/journals/...)",
        "cache": "response cache (.ape/cache.sqlite3)",
        "cache_max_mb": "size of the response cache in MB; the oldest answers go past it",
        "no_cache": "no response cache",
        "json_out": "write the result as JSON",
        "sim_latency_s": "latency of the built-in simulator, seconds",
    },
}
HELP: dict[str, str] = {name: text for group in GROUPS.values() for name, text in group.items()}

#: Flags other than ``--<field-name>``; the first is the one messages name.
_FLAGS = {
    "json_out": ("--json",),
    "sim_latency_s": ("--sim-latency",),
    "timeout_s": ("--timeout",),
    "proposal_timeout_s": ("--proposal-timeout",),
    # one name from flag to policy; --budget-calls, its earlier name, still works
    "budget_scoring_calls": ("--budget-scoring-calls", "--budget-calls"),
    "headers": ("--header",),
    "proposal_headers": ("--proposal-header",),
}
_METAVARS = {
    "api_key_env": "VAR",
    "api_key_file": "FILE",
    "proposal_api_key_file": "FILE",
    "headers": "NAME=VALUE",
    "proposal_headers": "NAME=VALUE",
    "proposal_api_key_env": "VAR",
    "timeout_s": "S",
    "proposal_timeout_s": "S",
    "cache_max_mb": "MB",
    "input_field": "KEY",
    "output_field": "KEY",
    "local_model": "PATH|smollm2",
    "scorer": "MODULE:FUNCTION",
    "candidates": "FILE",
    "judge_rubric": "NAME|FILE",
    "judge_api_key_env": "VAR",
    "templates": "FILE",
    "journal": "PATH",
    "cache": "PATH",
    "json_out": "OUT",
    "duplicate_similarity": "J",
    "sim_latency_s": "S",
    "budget_seconds": "S",
}
_FIELDS = {f.name: f for f in msgspec.structs.fields(StudyConfig)}
#: Flags a role's several endpoints repeat, and the list field several values go to.
_REPEATED = {"base_url": "endpoints", "proposal_base_url": "proposal_endpoints"}
_REPEATED_FROM = {listed: single for single, listed in _REPEATED.items()}


def flag_of(name: str) -> str:
    return _FLAGS.get(name, ("--" + name.replace("_", "-"),))[0]


def _kind(annotation: Any) -> Any:
    """The one type a flag's value has: Annotated, None and unions peeled off."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        (kind,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _kind(kind)
    return annotation


def _add_flag(group: Any, name: str, help_text: str, *, show_default: bool) -> None:
    field = _FIELDS[name]
    kind = _kind(field.type)
    flags = _FLAGS.get(name, (flag_of(name),))
    if kind is bool:
        on = field.default is True  # on by default: --name / --no-name
        action = argparse.BooleanOptionalAction if on else "store_true"
        group.add_argument(*flags, dest=name, action=action, default=None, help=help_text)
        return
    if name in _REPEATED:  # one URL per endpoint of the role
        group.add_argument(*flags, dest=name, action="append", metavar="URL", help=help_text)
        return
    if typing.get_origin(kind) is dict:  # NAME=VALUE, repeatable
        group.add_argument(
            *flags, dest=name, action="append", type=_pair, metavar=_METAVARS[name], help=help_text
        )
        return
    options: dict[str, Any] = {"dest": name, "help": help_text}
    if typing.get_origin(kind) is typing.Literal:
        options["choices"] = typing.get_args(kind)
    else:
        options["type"] = kind
        options["metavar"] = _METAVARS.get(name, {int: "N", float: "X"}.get(kind))
    default = field.default
    if show_default and default not in (None, "", msgspec.NODEFAULT):
        options["help"] = f"{help_text} (default: {default})"
    group.add_argument(*flags, **options)


def add_setting_flags(
    parser: argparse.ArgumentParser,
    names: Iterable[str] | None = None,
    *,
    show_defaults: bool = True,
) -> None:
    """A flag for each setting in `names` (all in `GROUPS` when None), in its group; the help
    shows the field's default unless `show_defaults` is false (the journal's value stands)."""
    wanted = set(HELP if names is None else names)
    for title, group in GROUPS.items():
        chosen = [name for name in group if name in wanted]
        if not chosen:
            continue
        target = parser.add_argument_group(title)
        for name in chosen:
            _add_flag(target, name, HELP[name], show_default=show_defaults)


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text.partition('=')[0]!r}")
    return name.strip(), value.strip()


def given_settings(args: argparse.Namespace, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The settings the flags gave (a flag left out is None), by field name; NAME=VALUE pairs
    become a table. A repeated --base-url gives the role's endpoints (`endpoints`), one gives
    `base_url`; either replaces the other."""
    settings: dict[str, Any] = {}
    for name in HELP if names is None else names:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name in _REPEATED:
            several = len(value) > 1
            settings[name] = None if several else value[0]
            settings[_REPEATED[name]] = [{"base_url": url} for url in value] if several else []
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
        name = _REPEATED_FROM.get(name, name)  # endpoints[1].base_url: the second --base-url
        where = flag_of(name) if name in set(flags) else error.path
        raise ConfigError(f"{where}: {error.problem}" if where else error.problem) from None
