"""`ape-engine run`: find the best instruction for a task.

Settings come from `--config FILE.toml` (the field names of `engine.study.config.StudyConfig`)
and are overridden by flags. Everything that can fail without a call (task file, config,
metric, prices) fails first; then the worst case and the expected spend are printed, and
`--dry-run` stops there. Without `--base-url` the study runs against the built-in simulator.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio
import orjson
from rich.console import Console

from engine.app.execute import execute
from engine.app.prepare import Prepared, prepare
from engine.study.config import POLICIES, StudyConfig, load_config_file
from engine.study.result import StudyResult
from engine.ui import Display, follow, make_ui
from engine.ui.progress import ProgressDisplay
from engine.ui.report import render_report

__all__ = ["add_arguments", "main", "run_prepared"]

# flag dest -> StudyConfig field
_FLAGS: dict[str, str] = {
    "task": "task",
    "task_format": "task_format",
    "model": "model",
    "base_url": "base_url",
    "api_key_env": "api_key_env",
    "proposal_model": "proposal_model",
    "proposal_base_url": "proposal_base_url",
    "proposal_api_key_env": "proposal_api_key_env",
    "api": "api",
    "transport": "transport",
    "policy": "policy",
    "metric": "metric",
    "scoring": "scoring",
    "delta": "delta",
    "epsilon": "epsilon",
    "budget_calls": "budget_calls",
    "budget_proposal_calls": "budget_proposal_calls",
    "budget_usd": "budget_usd",
    "budget_tokens": "budget_tokens",
    "budget_seconds": "budget_seconds",
    "concurrency": "concurrency",
    "rpm": "rpm",
    "tpm": "tpm",
    "seed": "seed",
    "initial_candidates": "initial_candidates",
    "variant_rounds": "variant_rounds",
    "scoring_size": "scoring_size",
    "test_size": "test_size",
    "include_human": "include_human",
    "proposal_template": "proposal_template",
    "templates": "templates",
    "duplicate_similarity": "duplicate_similarity",
    "scorer": "scorer",
    "journal": "journal",
    "cache": "cache",
    "no_cache": "no_cache",
    "json_out": "json_out",
    "sim_latency_s": "sim_latency_s",
    "backend": "backend",
    "local_model": "local_model",
    "local_threads": "local_threads",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--task", help="a built-in task name or a task file (JSONL, CSV, instruction induction)")
    add("--task-format", help="the task file's format when its extension does not say")
    add("--config", metavar="FILE.toml", help="settings file; flags override it")
    endpoint = parser.add_argument_group("endpoints (no --base-url: the built-in simulator)")
    endpoint.add_argument("--model", help="target model that executes instructions (sim-1)")
    endpoint.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. http://host:8000/v1")
    endpoint.add_argument("--api-key-env", metavar="VAR", help="environment variable with the key")
    endpoint.add_argument("--proposal-model", help="model that proposes instructions (= --model)")
    endpoint.add_argument("--proposal-base-url", help="its base URL (= --base-url)")
    endpoint.add_argument("--proposal-api-key-env", metavar="VAR")
    endpoint.add_argument("--api", choices=("chat", "completions"), help="API to call (chat)")
    endpoint.add_argument(
        "--transport",
        choices=("aiohttp", "lean"),
        help="HTTP client: aiohttp, or lean (HTTP/1.1, about half the memory per call) (aiohttp)",
    )
    endpoint.add_argument(
        "--backend",
        choices=("sim", "local"),
        help="without --base-url: the simulator (sim), or a local GGUF model (local) (sim)",
    )
    endpoint.add_argument(
        "--local-model", metavar="PATH|smollm2", help="the local model's .gguf file (smollm2)"
    )
    endpoint.add_argument("--local-threads", type=int, metavar="N", help="its CPU threads")
    search = parser.add_argument_group("search")
    search.add_argument("--policy", choices=POLICIES, help="scheduler policy (lucb)")
    search.add_argument("--metric", help="override the task's metric")
    search.add_argument("--scoring", choices=("exec", "logprob"), help="reward (exec)")
    search.add_argument(
        "--scorer",
        metavar="MODULE:FUNCTION",
        help="custom scorer: async (instruction, example, client) -> float in [0, 1]",
    )
    search.add_argument("--delta", type=float, help="error probability of the pick (0.05)")
    search.add_argument("--epsilon", type=float, help="tolerance of the pick (2 / pool size)")
    search.add_argument("--seed", type=int, help="seed of pools, proposals and policy (0)")
    search.add_argument("--initial-candidates", type=int, help="first batch of candidates (20)")
    search.add_argument("--variant-rounds", type=int, help="rounds of leader variants (2)")
    search.add_argument("--scoring-size", type=int, help="examples in the scoring pool (200)")
    search.add_argument("--test-size", type=int, help="examples in the test pool (100)")
    search.add_argument(
        "--include-human",
        action="store_true",
        default=None,
        help="also search over the task's human instruction",
    )
    search.add_argument(
        "--proposal-template",
        choices=("forward", "insert"),
        help="forward, or insert (completions with suffix) (forward)",
    )
    search.add_argument("--templates", metavar="FILE", help="TOML/JSON file of prompt templates")
    search.add_argument(
        "--duplicate-similarity",
        type=float,
        metavar="J",
        help="token-set Jaccard at which a proposal counts as a near copy (0.9)",
    )
    budget = parser.add_argument_group("budgets (all optional; the first reached stops)")
    budget.add_argument("--budget-calls", type=int, metavar="N", help="scoring calls")
    budget.add_argument("--budget-proposal-calls", type=int, metavar="N", help="proposal calls")
    budget.add_argument("--budget-usd", type=float, metavar="X", help="dollars")
    budget.add_argument("--budget-tokens", type=int, metavar="T", help="tokens")
    budget.add_argument("--budget-seconds", type=float, metavar="S", help="wall-clock seconds")
    limits = parser.add_argument_group("throughput")
    limits.add_argument("--concurrency", type=int, metavar="C", help="calls in flight (32)")
    limits.add_argument("--rpm", type=float, metavar="R", help="requests per minute")
    limits.add_argument("--tpm", type=float, metavar="T", help="tokens per minute")
    output = parser.add_argument_group("state and output")
    output.add_argument("--journal", metavar="PATH", help="journal file (.ape/journals/...)")
    output.add_argument("--cache", metavar="PATH", help="response cache (.ape/cache.jsonl)")
    output.add_argument("--no-cache", action="store_true", default=None, help="no response cache")
    output.add_argument("--json", dest="json_out", metavar="OUT", help="write the result as JSON")
    output.add_argument("--dry-run", action="store_true", help="print the estimate and stop")
    output.add_argument(
        "--tui",
        action="store_true",
        help="live terminal UI with keys to tune the study (plain lines when not a terminal)",
    )
    output.add_argument(
        "--sim-latency",
        dest="sim_latency_s",
        type=float,
        metavar="S",
        help="latency of the built-in simulator, seconds (0)",
    )


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    settings: dict[str, Any] = {}
    if getattr(args, "config", None):
        settings.update(load_config_file(args.config))
    for dest, name in _FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            settings[name] = value
    if settings.get("backend") == "local" and "model" not in settings:
        from engine.local.models import served_model_name

        settings["model"] = served_model_name(settings.get("local_model", "smollm2"))
    return StudyConfig(**settings)


def write_json(result: StudyResult, path: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2) + b"\n")


def run_prepared(
    prepared: Prepared,
    *,
    dry_run: bool = False,
    console: Console | None = None,
    ui: Display | None = None,
) -> int:
    console = console or Console()
    config = prepared.config

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False)

    say(
        f"task {prepared.task.name!r}: {len(prepared.splits.demo)} demos, "
        f"{len(prepared.splits.scoring)} scoring examples, {len(prepared.splits.test)} test "
        f"examples, metric {prepared.task.metric}; policy {config.policy}"
    )
    for line in prepared.estimate.lines():
        say(line)
    if prepared.replay is not None:
        candidates, observations = prepared.replay.counts()
        say(
            f"resuming study {prepared.study_id}: {candidates} candidates and "
            f"{observations} observations replayed from the journal"
        )
    if dry_run:
        say("dry run: no call made")
        return 0
    display = ProgressDisplay(console) if ui is None else None
    shown: Display = ui or display  # type: ignore[assignment]
    try:
        result = anyio.run(
            lambda: execute(prepared, say=say, watch=lambda study: follow(shown, study))
        )
    finally:
        if display is not None:
            display.close()
    render_report(result, console)
    if config.json_out:
        write_json(result, config.json_out)
        say(f"result written to {config.json_out}")
    if result.error:
        console.print(f"[red]{result.error}[/red]")
    # a study the user ended (the UI's quit key) printed its report: that is not a failure
    return 0 if result.ok or (result.status == "cancelled" and not result.error) else 1


def run_with_ui(prepared: Prepared, *, tui: bool, dry_run: bool) -> int:
    """`run_prepared`, with the live terminal UI when `tui` (shared by run and resume)."""
    if not tui or dry_run:
        return run_prepared(prepared, dry_run=dry_run)
    console = Console()
    with make_ui(console) as ui:
        return run_prepared(prepared, console=console, ui=ui)


def main(args: argparse.Namespace) -> int:
    prepared = prepare(config_from_args(args))
    return run_with_ui(prepared, tui=bool(getattr(args, "tui", False)), dry_run=bool(args.dry_run))
