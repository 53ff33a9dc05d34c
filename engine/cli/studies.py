"""`ape-engine studies`: the studies in a state folder (.ape, where `run` and `serve` keep
their journals), newest first: id, task, status, model, winner, held-out score, spend, date."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from engine.app.records import DEFAULT_STATE_DIR, list_studies
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


def main(args: argparse.Namespace) -> int:
    listing = list_studies(Path(args.state_dir))
    console = Console()
    if listing.records:
        console.print(build_studies(listing.records))
    else:
        console.print(f"no studies in {listing.folder}", highlight=False, markup=False)
    for path, why in listing.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    return 0
