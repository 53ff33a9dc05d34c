"""`ape-engine show JOURNAL|ID`: one study, running or finished, read back from its journal:
its held-out scores, the leaderboard with intervals, per candidate the examples it got wrong,
and the spend; `--html FILE` writes the same as one page with plots (`engine.ui.html_report`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from engine.app.records import open_record
from engine.cli.studies import add_state_dir
from engine.ui.html_report import write_html
from engine.ui.show import build_show

__all__ = ["ERROR_EXIT", "add_arguments", "main"]

ERROR_EXIT = 2  # a missing file, not a journal, an unknown id: bad input


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="JOURNAL|ID", help="a journal file, or a study's id")
    add_state_dir(parser)
    parser.add_argument(
        "--html", metavar="FILE", help="also write the report as one page that opens offline"
    )
    parser.add_argument(
        "--top", type=int, default=10, metavar="N", help="candidates shown (10, the best first)"
    )
    parser.add_argument(
        "--wrong", type=int, default=3, metavar="N", help="wrong answers shown per candidate (3)"
    )


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    record = open_record(args.study, Path(args.state_dir), say=_warn)
    console = Console()
    console.print(build_show(record, top=max(1, args.top), wrong=max(0, args.wrong)))
    if args.html:
        write_html(record, Path(args.html))
        console.print(f"report written to {args.html}", highlight=False, markup=False)
    return 0
