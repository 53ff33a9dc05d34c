"""`ape-engine compare A B ...`: studies side by side -- the same task on two target models, or
before and after a change: each winner with its held-out score and interval, the spend, the
models and the settings that differ; `--html FILE` writes the same as one page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from engine.app.records import open_record, study_settings
from engine.cli.studies import add_state_dir
from engine.errors import ConfigError
from engine.ui.compare import build_compare, labelled, render_compare_html

__all__ = ["ERROR_EXIT", "add_arguments", "main"]

ERROR_EXIT = 2  # a missing file, not a journal, an unknown id: bad input


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "studies", nargs="+", metavar="JOURNAL|ID", help="two or more journals or study ids"
    )
    add_state_dir(parser)
    parser.add_argument(
        "--html", metavar="FILE", help="also write the comparison as one page that opens offline"
    )


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    if len(args.studies) < 2:
        raise ConfigError("compare: give two studies or more (journal files or study ids)")
    records = [open_record(one, Path(args.state_dir), say=_warn) for one in args.studies]
    studies = labelled([(record, study_settings(record)) for record in records])
    console = Console()
    console.print(build_compare(studies))
    if args.html:
        path = Path(args.html)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_compare_html(studies), encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"--html {str(path)!r}: cannot write it ({error.strerror})") from None
        console.print(
            f"comparison written to {path}", highlight=False, markup=False, soft_wrap=True
        )
    return 0
