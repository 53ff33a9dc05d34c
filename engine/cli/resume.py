"""`ape-engine resume JOURNAL`: continue a study from its journal.

The journal's header gives back the config; budgets, concurrency and limits may be changed with
flags (the settings that define the study may not). Candidates and observations are replayed
into a fresh policy, so no completed call is paid for again.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.app.prepare import config_of, prepare
from engine.cli.flags import add_setting_flags, checked_config, given_settings
from engine.cli.run import add_html_flag, run_with_ui, with_baseline_file
from engine.errors import JournalError
from engine.settings import SETTINGS
from engine.study.events import BudgetChanged
from engine.study.journal import Replay, replay_journal
from engine.study.locks import journal_lock

__all__ = ["add_arguments", "main"]

#: The settings a journal may change: what it spends and how fast, where the endpoints are,
#: where the result goes (each declared `resume` on its field). The others define the study.
ADJUSTABLE = tuple(one.flat for one in SETTINGS if one.resume)


def _raised(replay: Replay, changes: dict[str, Any]) -> bool:
    """Does `changes` raise a budget above the limit the journal ends with (its settings, then
    every change made while it ran)? Anything else would only write another result."""
    limits = config_of(replay).budgets.as_dict()
    for event in replay.events:
        if isinstance(event, BudgetChanged):
            limits[event.name] = event.limit
    for name, limit in limits.items():
        given = changes.get(f"budget_{name}")
        if given is not None and limit is not None and given > limit:
            return True
    return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("journal", metavar="JOURNAL", help="the study's journal file")
    add_setting_flags(parser, ADJUSTABLE, show_defaults=False)  # the journal's values stand
    parser.add_argument("--dry-run", action="store_true", help="print the estimate and stop")
    parser.add_argument(
        "--tui",
        action="store_true",
        help="live terminal UI with keys to tune the study (plain lines when not a terminal)",
    )
    add_html_flag(parser)


def main(args: argparse.Namespace) -> int:
    if not Path(args.journal).is_file():
        replay_journal(args.journal)  # says why it cannot be read
    # taken before the journal is read: a second writer is refused at once, before it reads
    # or pays for anything
    with journal_lock(args.journal, "ape-engine resume") as lock:
        replay = replay_journal(args.journal)
        changes = with_baseline_file(given_settings(args, ADJUSTABLE))
        settings = {**config_of(replay).to_json(), **changes, "journal": args.journal}
        config = checked_config(settings, flags=changes)
        finished = replay.finished is not None and replay.finished.status == "finished"
        if finished and not _raised(replay, changes):
            raise JournalError(
                f"journal {args.journal!r}: study {replay.study_id} already finished; "
                f"raise a budget to continue it, or look at it: ape-engine show {args.journal}"
            )
        prepared = prepare(config, replay=replay)
        prepared.lock = lock
        return run_with_ui(prepared, tui=bool(args.tui), dry_run=bool(args.dry_run), html=args.html)
