"""`ape-engine tasks`: list the built-in tasks, or describe a task file."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from engine.task.builtin import builtin_task, builtin_task_names
from engine.task.load import load_task
from engine.task.loaders import FORMATS

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", help="a task file to describe (default: list built-ins)")
    parser.add_argument("--format", choices=FORMATS, help="the file's format (default: guessed)")
    parser.add_argument("--examples", type=int, default=5, help="examples to show for a file")


def _shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def main(args: argparse.Namespace) -> int:
    console = Console()
    if args.path is None:
        table = Table(title="Built-in tasks (use --task NAME)")
        for column in ("name", "examples", "metric", "human instruction"):
            table.add_column(column)
        for name in builtin_task_names():
            task = builtin_task(name)
            table.add_row(name, str(len(task.examples)), task.metric, task.human_instruction or "")
        console.print(table)
        return 0
    task = load_task(args.path, format=args.format)
    console.print(f"[bold]{task.name}[/bold]  ({task.source})")
    console.print(f"examples: {len(task.examples)}", end="")
    if task.test_examples is not None:
        console.print(f", own test file: {len(task.test_examples)}", end="")
    console.print(f"\nmetric: {task.metric}")
    console.print(f"human instruction: {task.human_instruction or '(none)'}")
    table = Table()
    for column in ("key", "input", "accepted outputs"):
        table.add_column(column)
    for example in task.examples[: args.examples]:
        table.add_row(example.key, _shorten(example.input), _shorten(" | ".join(example.outputs)))
    console.print(table)
    return 0
