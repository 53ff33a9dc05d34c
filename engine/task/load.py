"""`load_task`: one entry for a built-in task name or a task file path."""

from __future__ import annotations

from pathlib import Path

from engine.errors import DatasetError
from engine.task.builtin import BUILTIN_TASKS, builtin_task
from engine.task.loaders import load_file
from engine.task.types import Task

__all__ = ["load_task"]


def load_task(spec: str, *, seed: int = 0, format: str | None = None) -> Task:
    """A built-in task by name (generated with `seed`) or a task file by path."""
    if spec in BUILTIN_TASKS:
        return builtin_task(spec, seed=seed)
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "task.json").is_file():
        path = path / "task.json"
    if path.exists():
        return load_file(path, format=format)
    raise DatasetError(
        f"{spec!r} is neither a built-in task ({', '.join(BUILTIN_TASKS)}) nor an existing file"
    )
