"""`ape-engine run`: find the best instruction for a task.

Settings come from `--config FILE.toml` (the field names of `engine.study.config.StudyConfig`)
and are overridden by flags, one for each setting (`engine.cli.flags`). Everything that can
fail without a call (task file, config, metric, prices) fails first; then the worst case and the
expected spend are printed, and `--dry-run` stops there. Without `--base-url` the study runs
against the built-in simulator.
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
from engine.cli.flags import HELP, add_setting_flags, checked_config, given_settings
from engine.study.config import StudyConfig, load_config_file
from engine.study.result import StudyResult
from engine.ui import Display, follow, make_ui
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


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    settings: dict[str, Any] = {}
    if getattr(args, "config", None):
        settings.update(load_config_file(args.config))
    flags = given_settings(args)
    settings.update(flags)
    if settings.get("backend") == "local" and "model" not in settings:
        from engine.local.models import served_model_name

        settings["model"] = served_model_name(settings.get("local_model", "smollm2"))
    return checked_config(settings, flags=flags.keys() & HELP.keys())


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
