"""Tasks, datasets and metrics: what an instruction is optimised for."""

from engine.task.builtin import builtin_task, builtin_task_names
from engine.task.load import load_task
from engine.task.loaders import FORMATS, Fields, load_file
from engine.task.metrics import metric_function, normalise, score
from engine.task.split import Splits, split_task
from engine.task.types import BINARY_METRICS, METRICS, Example, Task

__all__ = [
    "BINARY_METRICS",
    "FORMATS",
    "METRICS",
    "Example",
    "Fields",
    "Splits",
    "Task",
    "builtin_task",
    "builtin_task_names",
    "load_file",
    "load_task",
    "metric_function",
    "normalise",
    "score",
    "split_task",
]
