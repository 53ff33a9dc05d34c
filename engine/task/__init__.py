"""Tasks, datasets and metrics: what an instruction is optimised for."""

from engine.task.types import METRICS, Example, Task

__all__ = ["METRICS", "Example", "Task"]
