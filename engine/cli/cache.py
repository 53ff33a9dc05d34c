"""`ape-engine cache stats|clear`: what the response cache holds, and emptying it.

The cache (`engine.study.cache`, one SQLite file) answers a repeated request for free; it is
bounded by ``cache_max_mb`` on its own, so clearing it is only needed to force fresh answers or
to take back the disk at once. ``clear --older-than DAYS`` keeps the recent answers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from engine.errors import ConfigError
from engine.study.cache import CACHE_FILE, ResponseCache

__all__ = ["add_arguments", "main"]

DEFAULT_CACHE = Path(".ape") / CACHE_FILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", choices=("stats", "clear"), help="show what it holds, or empty it"
    )
    parser.add_argument(
        "--cache",
        metavar="PATH",
        default=str(DEFAULT_CACHE),
        help=f"the cache file ({DEFAULT_CACHE}; a service's is <state-dir>/{CACHE_FILE})",
    )
    parser.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        help="clear: only the answers older than this many days",
    )


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def main(args: argparse.Namespace) -> int:
    path = Path(args.cache)
    if args.older_than is not None and not 0 <= args.older_than <= 1e6:
        raise ConfigError(f"--older-than: days from 0 to 1000000 (got {args.older_than})")
    if not path.is_file():
        print(f"no response cache at {path}")
        return 0
    problems: list[str] = []
    cache = ResponseCache(path, say=problems.append, reserve_bytes=0)  # clear a full disk too
    try:
        if problems:
            raise ConfigError(problems[0])
        if args.action == "clear":
            days = args.older_than
            removed = cache.clear(None if days is None else days * 86_400)
            which = "" if days is None else f" older than {days:g} days"
            print(f"response cache {path}: removed {removed:,} answers{which}")
        stats = cache.stats()
    finally:
        cache.close()
    print(
        f"response cache {path}: {stats.entries:,} answers, {stats.bytes / 1e6:.1f} MB; "
        f"oldest {_when(stats.oldest)}, newest {_when(stats.newest)}"
    )
    return 0
