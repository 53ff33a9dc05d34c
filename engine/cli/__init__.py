"""The `ape-engine` command line.

Each subcommand lives beside the code it drives, in a module that provides
``add_arguments(parser)`` and ``main(args) -> int``; this file only names them, so that
``ape-engine --help`` lists every command and importing the CLI stays cheap.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence

from engine import __version__
from engine.cli.flags import command_line_naming
from engine.errors import EngineError, naming

__all__ = ["main"]

# name -> (module, one-line help). Keep in the order a new user meets them.
COMMANDS: dict[str, tuple[str, str]] = {
    "tasks": ("engine.cli.tasks", "list the built-in tasks, or describe a task file"),
    "run": ("engine.cli.run", "find the best instruction for a task (a study)"),
    "resume": ("engine.cli.resume", "continue a study from its journal"),
    "studies": ("engine.cli.studies", "list the studies in a state folder (.ape)"),
    "show": ("engine.cli.show", "show a study from its journal: scores, answers, spend (--html)"),
    "compare": (
        "engine.cli.compare",
        "studies side by side: winners, held-out scores, spend, settings that differ (--html)",
    ),
    "export": ("engine.cli.export", "write a study's candidates or answers as CSV or JSONL"),
    "cache": ("engine.cli.cache", "show or clear the response cache (stats | clear)"),
    "sim": ("engine.cli.sim", "run the simulated OpenAI-compatible LLM server (not a real model)"),
    "serve": ("engine.cli.serve", "run studies in a long-lived service with an HTTP JSON API"),
    "top": (
        "engine.cli.top",
        "live terminal UI of a study in a running service (ape-engine serve)",
    ),
    "local": (
        "engine.cli.local",
        "serve a local GGUF model (llama.cpp) as an OpenAI-compatible server",
    ),
}


_SUBPARSERS: dict[str, argparse.ArgumentParser] = {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ape-engine",
        description="Automatic Prompt Engineer as an async engine: find the best instruction "
        "for a task for a fraction of the calls of full evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"ape-engine {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
        _SUBPARSERS[name] = sub
    return parser


def _unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> None:
    """Refuse arguments no command takes, with the flag that was probably meant."""
    sub = _SUBPARSERS.get(getattr(args, "command", None) or "", parser)
    known = [flag for action in sub._actions for flag in action.option_strings]
    said = []
    for extra in extras:
        flag = extra.partition("=")[0]
        close = (
            difflib.get_close_matches(flag, known, n=1, cutoff=0.6) if flag.startswith("-") else []
        )
        said.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
    sub.error(f"unrecognized arguments: {' '.join(said)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        _unknown(parser, args, extras)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with naming(command_line_naming()):  # a message names a setting by its flag
            result: int = args._module.main(args)
    except EngineError as error:
        print(f"ape-engine {args.command}: {error}", file=sys.stderr)
        # commands that only read their input say it was bad input (2), as argparse does
        code: int = getattr(args._module, "ERROR_EXIT", 1)
        return code
    except KeyboardInterrupt:  # before a study ran (a running one says where it stands)
        print(f"ape-engine {args.command}: interrupted", file=sys.stderr)
        return 130
    return result
