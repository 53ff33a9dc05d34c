"""`ape-engine run`: find the best instruction for a task.

Settings come from `--config FILE.toml` (flat names or group tables, `engine.settings`) and are
overridden by flags, one for each setting (`engine.cli.flags`). Everything that can
fail without a call (task file, config, metric, prices) fails first; then the worst case and the
expected spend are printed, and `--dry-run` stops there. Without `--base-url` the study runs
against the built-in simulator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
from rich.console import Console

from engine.app.execute import check_keys, endpoints_json, execute
from engine.app.prepare import Prepared, prepare
from engine.app.records import open_record
from engine.cli.flags import (
    FLAGGED,
    add_setting_flags,
    checked_config,
    command_line_naming,
    given_settings,
    named_in_file,
)
from engine.cli.interrupts import Interrupts
from engine.decoding import read_text
from engine.errors import ConfigError, EngineError, naming
from engine.settings import StudyConfig, load_config_file
from engine.study.gate import GATE_EXIT
from engine.study.result import StudyResult
from engine.study.study import Study
from engine.ui import Display, follow, make_ui
from engine.ui.html_report import write_html
from engine.ui.output import output_console
from engine.ui.progress import ProgressDisplay
from engine.ui.report import render_report

__all__ = ["add_arguments", "main", "run_prepared"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml", help="settings file; flags override it")
    add_setting_flags(parser)
    output = parser.add_argument_group("run")
    output.add_argument("--dry-run", action="store_true", help="print the estimate and stop")
    output.add_argument(
        "--tui",
        action="store_true",
        help="live terminal UI with keys to tune the study (plain lines when not a terminal)",
    )
    add_html_flag(output)


def add_html_flag(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--html",
        metavar="FILE",
        help="at the end, write the report as one page with plots that opens offline",
    )


def file_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the `--config` file gives, as written (none without one)."""
    return load_config_file(args.config) if getattr(args, "config", None) else {}


def config_from_args(
    args: argparse.Namespace, in_file: dict[str, Any] | None = None
) -> StudyConfig:
    """The settings of the `--config` file (`in_file`, when read already), then the flags."""
    settings: dict[str, Any] = dict(file_settings(args) if in_file is None else in_file)
    flags = given_settings(args)
    settings.update(flags)
    settings = with_baseline_file(settings)
    config = checked_config(settings, flags=flags.keys() & FLAGGED.keys())
    named = "model" in settings or "model" in settings.get("target", {})
    if config.backend.kind == "local" and not named:
        from engine.local.models import served_model_name

        config = config.replace(model=served_model_name(config.backend.local_model))
    return config


def _is_file(value: str) -> bool:
    """Does `value` name a file? (An instruction too long for a path names none.)"""
    try:
        return Path(value).expanduser().is_file()
    except OSError:
        return False


def with_baseline_file(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with a gate's baseline that names a file (``--baseline prod.txt``) read: the
    instruction is the file's text. Only the command line reads it; a service request's
    baseline is always the instruction itself."""
    gate = settings.get("gate")
    nested = isinstance(gate, dict) and "baseline" in gate and "baseline" not in settings
    value = gate["baseline"] if nested else settings.get("baseline")  # type: ignore[index]
    if not isinstance(value, str) or "\n" in value or not _is_file(value):
        return settings
    where = f"--baseline {value!r}"
    text = read_text(Path(value).expanduser(), where).strip()
    if not text:
        raise ConfigError(f"{where}: the file is empty; it holds the baseline instruction")
    if nested:
        return {**settings, "gate": {**gate, "baseline": text}}  # type: ignore[dict-item]
    return {**settings, "baseline": text}


def _write(data: dict[str, Any], path: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


def _ran_on(prepared: Prepared) -> dict[str, Any]:
    """What the result JSON adds to the result: the backend, the endpoints, the settings."""
    return {
        "endpoints": endpoints_json(prepared),
        "journal": str(prepared.journal_path),
        "settings": prepared.config.flat(),
    }


def write_json(result: StudyResult, prepared: Prepared, status: str | None = None) -> None:
    data = {**result.to_json(), **_ran_on(prepared)}
    if status is not None:
        data["status"] = status
    _write(data, str(prepared.config.outputs.json_out))


def write_failure_json(prepared: Prepared, error: BaseException) -> None:
    """The result JSON of a study that failed before it started (preflight, probe, setup)."""
    message = str(error)
    data = {
        "study_id": prepared.study_id,
        "task": prepared.task.name,
        "policy": prepared.config.search.policy,
        "status": "failed",
        "reason": message,
        "error": message,
        "winner": None,
        "candidates": [],
        **_ran_on(prepared),
        "journal": None,  # nothing was journaled: the study never started
    }
    _write(data, str(prepared.config.outputs.json_out))


def _standing(result: StudyResult, prepared: Prepared, signal_name: str) -> str:
    """Where an interrupted study stands and how to go on."""
    leader = next((c for c in result.candidates if c.arm == result.winner_arm), None)
    lead = (
        f"leader #{leader.arm} {leader.instruction!r} (mean {leader.mean:.3f} over "
        f"{leader.pulls} scoring calls)"
        if leader
        else "no candidate scored yet"
    )
    spend = result.spend
    return (
        f"interrupted by {signal_name}: {lead}; spent {spend.scoring_calls} scoring calls, "
        f"{spend.proposal_calls} proposal calls, ${spend.usd:.4f}; resume with: "
        f"ape-engine resume {prepared.journal_path}"
    )


def run_prepared(
    prepared: Prepared,
    *,
    dry_run: bool = False,
    console: Console | None = None,
    ui: Display | None = None,
    html: str | None = None,
) -> int:
    console = console or output_console()
    config = prepared.config

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False)

    task = prepared.task
    fields = f"input fields {', '.join(task.fields)}, " if task.fields else ""
    scored = f"checks {', '.join(c.name for c in prepared.checks)}" if prepared.checks else ""
    say(
        f"task {task.name!r}: {len(prepared.splits.demo)} demos, "
        f"{len(prepared.splits.scoring)} scoring examples, {len(prepared.splits.test)} test "
        f"examples, {fields}{scored or f'metric {task.metric}'}; policy {config.search.policy}"
    )
    for warning in prepared.task.warnings:
        say(f"warning: {warning}")
    for line in prepared.estimate.lines():
        say(line)
    if prepared.replay is not None:
        candidates, observations = prepared.replay.counts()
        say(
            f"resuming study {prepared.study_id}: {candidates} candidates and "
            f"{observations} observations replayed from the journal"
        )
    if dry_run:
        check_keys(prepared)  # what the run reads before its first call
        say(f"would run on: {runs_on(prepared)}")
        say("dry run: no call made")
        return 0
    display = ProgressDisplay(console) if ui is None else None
    shown: Display = ui or display  # type: ignore[assignment]
    interrupts = Interrupts()

    async def watch(study: Study) -> None:
        interrupts.install(study)
        await follow(shown, study)

    try:
        result = anyio.run(lambda: execute(prepared, say=say, watch=watch))
    except EngineError as error:
        if config.outputs.json_out:
            write_failure_json(prepared, error)
        raise
    finally:
        if display is not None:
            display.close()
    return _report(result, prepared, console, interrupts.received, html)


def _write_html(prepared: Prepared, path: str, console: Console) -> None:
    """The report page, read back from the study's journal as `ape-engine show` reads it."""
    write_html(open_record(prepared.journal_path), Path(path))
    console.print(f"report written to {path}", highlight=False, markup=False)


def _where(role: dict[str, Any], from_environment: tuple[str, ...] = ()) -> str:
    """A role's endpoint, or its endpoints and how many; where its URL and key came from."""
    several = role.get("endpoints", ())
    if several:
        urls = f"{', '.join(one['base_url'] for one in several)} ({len(several)} endpoints)"
    else:
        urls = str(role["base_url"])
        if "base_url" in from_environment:
            urls += " (from $OPENAI_BASE_URL)"
    variable = role.get("api_key_env")
    return f"{urls} with the key in ${variable}" if variable else urls


def runs_on(prepared: Prepared) -> str:
    """The backend, and each role's model, endpoint and key variable (never a key)."""
    ends = endpoints_json(prepared)
    target, proposal = ends["target"], ends["proposal"]
    came = prepared.from_environment
    shared = came if proposal.get("base_url") == target.get("base_url") else ()
    return (
        f"{ends['backend']}; target {target['model']!r} at {_where(target, came)}; "
        f"proposals {proposal['model']!r} at {_where(proposal, shared)}"
    )


def _report(
    result: StudyResult,
    prepared: Prepared,
    console: Console,
    interrupted: str | None,
    html: str | None,
) -> int:
    config = prepared.config
    render_report(result, console)
    console.print(f"ran on: {runs_on(prepared)}", highlight=False, markup=False)
    if config.outputs.json_out:
        write_json(result, prepared, "interrupted" if interrupted else None)
        console.print(f"result written to {config.outputs.json_out}", highlight=False, markup=False)
    if html:
        _write_html(prepared, html, console)
    if interrupted:
        console.print(_standing(result, prepared, interrupted), highlight=False, markup=False)
        return 130
    proof = result.certificate
    if result.ok and proof is not None and not proof.proven and proof.more_calls:
        more = result.spend.scoring_calls + proof.more_calls
        console.print(
            f"to prove the pick: ape-engine resume {prepared.journal_path} "
            f"--budget-scoring-calls {more}",
            highlight=False,
            markup=False,
        )
    if result.error:
        print(f"ape-engine run: {result.error}", file=sys.stderr, flush=True)
    if result.gate is not None:  # one line for the pipeline's log, and its exit code
        console.print(result.gate.line, highlight=False, markup=False, soft_wrap=True)
        if not result.gate.passed and (result.ok or not result.error):
            return GATE_EXIT
    # a study the user ended (the UI's quit key) printed its report: that is not a failure
    return 0 if result.ok or (result.status == "cancelled" and not result.error) else 1


def run_with_ui(prepared: Prepared, *, tui: bool, dry_run: bool, html: str | None = None) -> int:
    """`run_prepared`, with the live terminal UI when `tui` (shared by run and resume)."""
    if not tui or dry_run:
        return run_prepared(prepared, dry_run=dry_run, html=html)
    console = output_console()
    with make_ui(console) as ui:
        return run_prepared(prepared, console=console, ui=ui, html=html)


def main(args: argparse.Namespace) -> int:
    in_file = file_settings(args)
    # a message names a setting the --config file gave by its key there, the others by flag
    with naming(command_line_naming(named_in_file(in_file))):
        return _run(config_from_args(args, in_file), args)


def _run(config: StudyConfig, args: argparse.Namespace) -> int:
    prepared = prepare(config)
    return run_with_ui(
        prepared,
        tui=bool(getattr(args, "tui", False)),
        dry_run=bool(args.dry_run),
        html=getattr(args, "html", None),
    )
