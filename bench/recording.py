"""Recorded evaluations: one model's full evaluation of fixed candidate pools, kept in the
repository so that selection can be replayed without the model (bench/recordings/README.md).

A recording is one gzipped JSON file, ``bench/recordings/<model>-<scoring>.json.gz``::

    {
      "format": 1,
      "model": "smollm2",                     # what the server answered to
      "model_file": "SmolLM2-135M-Instruct-Q4_1.gguf",
      "scoring": "logprob",                   # or "exec"
      "api": "completions",                   # how the target was asked
      "chat_format": null, "scoring_demos": 0,
      "data": "instruction_induction/induce", # where the tasks come from
      "split": {"seed": 0, "scoring_size": 40, "demo_size": 50, "test_size": 10},
      "decimals": 4,                          # rewards are rounded to this many decimals
      "tasks": {
        "antonyms": {
          "metric": "exact_match",
          "candidates": ["...", ...],         # K instruction texts
          "origins": ["human", "own", "paraphrase", "distractor", ...],
          "examples": ["12", ...],            # n example keys of the task file, in pool order
          "rewards": [[0.9123, ...], ...],    # K rows of n rewards in [0, 1]
          "complete": true,                   # false while the recording is under way
          "seconds": 123.4
        }, ...
      }
    }

`read` checks every field and names the file and the field that is wrong; `tables` gives the
complete tasks' K x n reward arrays, which is all selection needs.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "RECORDINGS", "RecordedTask", "read", "recordings", "tables", "write"]

FORMAT = 1
RECORDINGS = Path(__file__).resolve().parent / "recordings"
ORIGINS = ("human", "own", "paraphrase", "distractor")


@dataclass(frozen=True, slots=True)
class RecordedTask:
    name: str
    metric: str
    candidates: tuple[str, ...]
    rewards: np.ndarray  # K x n

    @property
    def binary(self) -> bool:
        return bool(np.isin(self.rewards, (0.0, 1.0)).all())


class RecordingError(ValueError):
    pass


def _need(condition: bool, path: Path, field: str, what: str) -> None:
    if not condition:
        raise RecordingError(f"{path}: field {field}: {what}")


def _check_task(path: Path, name: str, entry: Any) -> None:
    where = f"tasks.{name}"
    _need(isinstance(entry, dict), path, where, "must be an object")
    for key in ("metric", "candidates", "origins", "examples", "rewards", "complete"):
        _need(key in entry, path, f"{where}.{key}", "is missing")
    candidates, rewards = entry["candidates"], entry["rewards"]
    _need(
        isinstance(candidates, list) and all(isinstance(c, str) and c for c in candidates),
        path,
        f"{where}.candidates",
        "must be a list of non-empty strings",
    )
    _need(len(set(candidates)) == len(candidates), path, f"{where}.candidates", "has duplicates")
    origins = entry["origins"]
    _need(
        isinstance(origins, list)
        and len(origins) == len(candidates)
        and all(o in ORIGINS for o in origins),
        path,
        f"{where}.origins",
        f"must name one of {', '.join(ORIGINS)} for each candidate",
    )
    examples = entry["examples"]
    _need(isinstance(examples, list) and examples, path, f"{where}.examples", "must be a list")
    _need(isinstance(rewards, list), path, f"{where}.rewards", "must be a list of rows")
    complete = entry["complete"]
    _need(
        len(rewards) == len(candidates) or (not complete and len(rewards) <= len(candidates)),
        path,
        f"{where}.rewards",
        f"has {len(rewards)} rows for {len(candidates)} candidates",
    )
    for row_index, row in enumerate(rewards):
        field = f"{where}.rewards[{row_index}]"
        _need(isinstance(row, list) and len(row) == len(examples), path, field,
              f"must hold {len(examples)} rewards, one per example")  # fmt: skip
        _need(all(isinstance(r, int | float) and 0.0 <= r <= 1.0 for r in row), path, field,
              "rewards must be numbers in [0, 1]")  # fmt: skip


def read(path: Path) -> dict[str, Any]:
    """A recording, checked field by field (a `RecordingError` names the file and the field)."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, json.JSONDecodeError, EOFError) as error:
        raise RecordingError(f"{path}: not a gzipped JSON recording ({error})") from None
    _need(isinstance(data, dict), path, "(top)", "must be an object")
    _need(data.get("format") == FORMAT, path, "format", f"must be {FORMAT}")
    for key in ("model", "scoring", "tasks"):
        _need(key in data, path, key, "is missing")
    _need(data["scoring"] in ("logprob", "exec"), path, "scoring", "must be logprob or exec")
    _need(isinstance(data["tasks"], dict), path, "tasks", "must be an object")
    for name, entry in data["tasks"].items():
        _check_task(path, name, entry)
    return data


def write(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (a new file, then a rename), so an interrupted run keeps the last one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".tmp")
    with gzip.open(partial, "wt", encoding="utf-8", compresslevel=9) as stream:
        json.dump(data, stream, separators=(",", ":"), ensure_ascii=False)
    os.replace(partial, path)


def tables(data: dict[str, Any]) -> list[RecordedTask]:
    """The complete tasks of a recording, in name order."""
    return [
        RecordedTask(
            name,
            entry["metric"],
            tuple(entry["candidates"]),
            np.asarray(entry["rewards"], dtype=np.float64),
        )
        for name, entry in sorted(data["tasks"].items())
        if entry["complete"]
    ]


def recordings(folder: Path = RECORDINGS) -> list[Path]:
    """Every recording in the folder, in name order."""
    return sorted(folder.glob("*.json.gz"))
