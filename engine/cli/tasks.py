"""`ape-engine tasks`: list the built-in tasks, or describe a task (a file or a built-in name;
`--input-field` and `--output-field` name a file's columns, as they do for `run`)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from engine.cli.flags import command_line_naming
from engine.errors import ConfigError, naming
from engine.task.builtin import builtin_task, builtin_task_names
from engine.task.load import load_task
from engine.task.loaders import FORMATS, Fields
from engine.task.split import split_task
from engine.task.types import Task
from engine.ui.output import output_console

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        metavar="NAME|PATH",
        help="a task file or built-in task to describe (default: list the built-in tasks)",
    )
    parser.add_argument("--format", choices=FORMATS, help="the file's format (default: guessed)")
    parser.add_argument(
        "--annotations", metavar="FILE", help="a file of human instructions for the task"
    )
    parser.add_argument(
        "--input-field",
        metavar="KEY",
        help="the key (CSV column) of a JSON lines, JSON or CSV file holding the input (input); "
        "several, comma-separated (title,body), make an input of named fields",
    )
    parser.add_argument(
        "--output-field",
        metavar="KEY",
        help="the key (CSV column) holding the accepted output or outputs (output)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of built-in tasks and splits")
    parser.add_argument("--examples", type=int, default=5, help="examples to show (default 5)")


def _shorten(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _list_builtins(console: Console, seed: int) -> None:
    table = Table(title="Built-in tasks (--task NAME; generated from code, no files)")
    for column in ("name", "examples", "metric", "human instruction"):
        table.add_column(column, overflow="fold")
    for name in builtin_task_names():
        task = builtin_task(name, seed=seed)
        table.add_row(name, str(len(task.examples)), task.metric, task.human_instruction or "")
    console.print(table)
    console.print("Describe one with `ape-engine tasks NAME`, or a task file with a PATH.")


def _describe(console: Console, task: Task, seed: int, shown: int) -> None:
    console.print(f"[bold]{task.name}[/bold]  ({task.source})")
    if task.description:
        console.print(f"description: {_shorten(task.description, 200)}")
    counts = f"examples: {len(task.examples)}"
    if task.test_examples is not None:
        counts += f", own test file: {len(task.test_examples)}"
    console.print(counts)
    try:
        splits = split_task(task, seed=seed)
        console.print(
            f"pools (defaults, seed {seed}): demo {len(splits.demo)}, "
            f"scoring {len(splits.scoring)}, test {len(splits.test)}"
        )
    except ConfigError as error:
        console.print(f"pools: {error}")
    if task.fields:
        console.print(f"input fields: {', '.join(task.fields)}", markup=False, highlight=False)
    console.print(f"metric: {task.metric}")
    if task.checks:
        kinds = ", ".join(str(c.get("kind")) if isinstance(c, dict) else "?" for c in task.checks)
        console.print(f"checks: {kinds} (they score the answers in place of the metric)")
    for warning in task.warnings:
        console.print(f"warning: {warning}", markup=False, highlight=False)
    console.print(f"human instruction: {task.human_instruction or '(none)'}")
    table = Table()
    for column in ("key", "input", "accepted outputs"):
        table.add_column(column, overflow="fold")
    if any(e.choices for e in task.examples[:shown]):
        table.add_column("choices", overflow="fold")
    for example in task.examples[:shown]:
        row = [example.key, _shorten(example.input), _shorten(" | ".join(example.outputs))]
        if len(table.columns) == 4:
            row.append(_shorten(" | ".join(example.choices or ())))
        table.add_row(*row)
    console.print(table)


def main(args: argparse.Namespace) -> int:
    console = output_console()
    if args.path is None:
        _list_builtins(console, args.seed)
        return 0
    fields = Fields(args.input_field or "input", args.output_field or "output")
    # this command's --format is run's --task-format
    with naming(command_line_naming(task_format="--format")):
        task = load_task(
            args.path, seed=args.seed, format=args.format, annotations=args.annotations,
            fields=fields,
        )  # fmt: skip
    _describe(console, task, args.seed, max(0, args.examples))
    return 0
