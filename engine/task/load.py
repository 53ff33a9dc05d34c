"""`load_task`: one entry for a built-in task name or a task file path (`--task NAME|PATH`)."""

from __future__ import annotations

from pathlib import Path

from engine.errors import DatasetError, setting
from engine.task.builtin import BUILTIN_TASKS, builtin_task
from engine.task.loaders import Fields, load_file
from engine.task.types import Task

__all__ = ["load_task"]


def load_task(
    spec: str,
    *,
    seed: int = 0,
    format: str | None = None,
    annotations: str | Path | None = None,
    fields: Fields | None = None,
) -> Task:
    """A built-in task by name (generated with `seed`) or a task file by path.

    `format` forces a file format (see `engine.task.FORMATS`) instead of guessing it; a directory
    holding a BIG-Bench `task.json` stands for that file. `annotations` names a file of human
    instructions (`{"annotations": [...]}`) whose first entry becomes the human baseline;
    `fields` names the input and output keys (columns) of a JSON lines, JSON or CSV file.
    """
    if spec in BUILTIN_TASKS:
        task = builtin_task(spec, seed=seed)
        if annotations is not None:
            raise DatasetError(
                f"{annotations}: annotations apply to task files, not to the built-in task {spec!r}"
            )
        if fields is not None and fields != Fields():
            raise DatasetError(
                f"{setting('input_field')} and {setting('output_field')} apply to task files, "
                f"not to the built-in task {spec!r}"
            )
        return task
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "task.json").is_file():
        path = path / "task.json"
    if path.is_file():
        return load_file(path, format=format, annotations=annotations, fields=fields)
    if path.is_dir():
        raise DatasetError(f"{path}: a directory; give a task file (or a folder with task.json)")
    raise DatasetError(
        f"{spec!r} is neither a built-in task nor an existing task file; built-in tasks: "
        f"{', '.join(BUILTIN_TASKS)} (or give the path of a task file)"
    )
