"""`ape-engine studies`: the studies in a state folder (.ape, where `run` and `serve` keep
their journals), newest first: id, task, status, model, winner, held-out score, spend, date;
`--format json|tsv` gives them whole, for scripts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.app.records import DEFAULT_STATE_DIR, list_studies
from engine.cli.formats import STUDY_COLUMNS, add_format_flag, render_rows, study_row
from engine.ui.output import output_console
from engine.ui.show import build_studies

__all__ = ["ERROR_EXIT", "add_arguments", "main"]

ERROR_EXIT = 2  # a missing folder is bad input


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        default=str(DEFAULT_STATE_DIR),
        help=f"the state folder whose journals/ hold the studies ({DEFAULT_STATE_DIR})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_state_dir(parser)
    add_format_flag(parser, ("json", "tsv"), "json (one array) or tsv (a header, a line a study)")


def main(args: argparse.Namespace) -> int:
    listing = list_studies(Path(args.state_dir))
    console = output_console()
    if args.format != "table":
        rows = [study_row(record) for record in listing.records]
        sys.stdout.write(render_rows(rows, STUDY_COLUMNS, args.format))
    elif listing.records:
        console.print(build_studies(listing.records))
    else:
        console.print(f"no studies in {listing.folder}", highlight=False, markup=False)
    for path, why in listing.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    return 0
