"""`ape-engine show JOURNAL|ID`: one study, running or finished, read back from its journal:
its held-out scores, the leaderboard with intervals, per candidate the examples it got wrong,
and the spend; `--html FILE` writes the same as one page with plots (`engine.ui.html_report`);
`--format json|tsv` gives it to scripts (`engine.cli.formats`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from engine.app.records import open_record
from engine.cli.formats import CANDIDATE_COLUMNS, add_format_flag, render_rows, study_json
from engine.cli.studies import add_state_dir
from engine.ui.html_report import write_html
from engine.ui.output import output_console
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
    add_format_flag(
        parser, ("json", "tsv"), "json (the study as one object) or tsv (a line a candidate)"
    )


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    record = open_record(args.study, Path(args.state_dir), say=_warn)
    if args.format == "json":
        sys.stdout.write(orjson.dumps(study_json(record), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    elif args.format == "tsv":
        rows = study_json(record)["candidates"]
        sys.stdout.write(render_rows(rows, CANDIDATE_COLUMNS, "tsv"))
    if args.format != "table":
        if args.html:
            write_html(record, Path(args.html))
        return 0
    console = output_console()
    console.print(build_show(record, top=max(1, args.top), wrong=max(0, args.wrong)))
    if args.html:
        write_html(record, Path(args.html))
        console.print(f"report written to {args.html}", highlight=False, markup=False)
    return 0
