"""`ape-engine resume JOURNAL`: continue a study from its journal.

The journal's header gives back the config; budgets, concurrency and limits may be changed with
flags (the settings that define the study may not). Candidates and observations are replayed
into a fresh policy, so no completed call is paid for again.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.app.prepare import config_of, prepare
from engine.cli.run import run_with_ui
from engine.errors import JournalError
from engine.study.journal import replay_journal

__all__ = ["add_arguments", "main"]

_ADJUSTABLE = {
    "budget_calls": int,
    "budget_proposal_calls": int,
    "budget_usd": float,
    "budget_tokens": int,
    "budget_seconds": float,
    "concurrency": int,
    "rpm": float,
    "tpm": float,
    "base_url": str,
    "proposal_base_url": str,
    "api_key_env": str,
    "json_out": str,
    "sim_latency_s": float,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("journal", metavar="JOURNAL", help="the study's journal file")
    for name, kind in _ADJUSTABLE.items():
        flag = "--json" if name == "json_out" else "--" + name.replace("_", "-")
        parser.add_argument(flag, dest=name, type=kind, help=f"override {name}")
    parser.add_argument("--dry-run", action="store_true", help="print the estimate and stop")
    parser.add_argument(
        "--tui",
        action="store_true",
        help="live terminal UI with keys to tune the study (plain lines when not a terminal)",
    )


def main(args: argparse.Namespace) -> int:
    replay = replay_journal(args.journal)
    changes: dict[str, Any] = {"journal": args.journal}
    for name in _ADJUSTABLE:
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    config = config_of(replay).replace(**changes)
    finished = replay.finished is not None and replay.finished.status == "finished"
    if finished and not any(name.startswith("budget_") for name in changes):
        raise JournalError(
            f"journal {args.journal!r}: study {replay.study_id} already finished; "
            "raise a budget to continue it"
        )
    return run_with_ui(
        prepare(config, replay=replay), tui=bool(args.tui), dry_run=bool(args.dry_run)
    )
