"""`ape-engine top [URL]`: the live screen of a study running in an `ape-engine serve` process
(`engine.ui.top`)."""

from __future__ import annotations

import argparse
from functools import partial

import anyio

from engine.errors import ConfigError
from engine.ui.top import DEFAULT_TOKEN_ENV, DEFAULT_URL, top

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url", nargs="?", default=DEFAULT_URL, help=f"the service's address ({DEFAULT_URL})"
    )
    parser.add_argument("--study", metavar="ID", help="the study to follow (first running one)")
    parser.add_argument(
        "--token-env",
        metavar="VAR",
        default=DEFAULT_TOKEN_ENV,
        help=f"environment variable holding the service's bearer token ({DEFAULT_TOKEN_ENV})",
    )
    parser.add_argument("--list", action="store_true", help="list the service's studies and stop")
    parser.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    parser.add_argument(
        "--every",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between plain lines (2)",
    )


def main(args: argparse.Namespace) -> int:
    if not args.every > 0:
        raise ConfigError(f"--every: must be a positive number of seconds (got {args.every})")
    run = partial(
        top,
        args.url,
        study=args.study,
        list_only=bool(args.list),
        token_env=args.token_env,
        plain=bool(args.plain),
        every_s=args.every,
    )
    return anyio.run(run)
