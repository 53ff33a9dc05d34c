"""A task's fingerprint: a hash of its name, metric, human instruction and examples (the test
file's too), which a journal keeps so that a study resumes only on the task it was made on.

Each part is hashed as compact JSON (no spaces, UTF-8 as it is); a task file read as a stream
(`engine.task.stream.ExampleFile`) hashes its examples as it reads them, so its fingerprint
needs no second reading.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from engine.task.types import Example, Task

__all__ = ["example_bytes", "header_bytes", "task_fingerprint"]

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ESCAPED = re.compile(r'["\\\x00-\x1f]')  # what JSON writes otherwise than as it is


def header_bytes(name: str, metric: str, human: str | None) -> bytes:
    return _ENCODE([name, metric, human]).encode("utf-8")


def example_bytes(example: Example, *prefix: str) -> bytes:
    if example.fields is not None:  # the fields themselves, not how they are shown
        named: list[Any] = [*prefix, dict(example.fields), list(example.outputs)]
        return _ENCODE(named).encode("utf-8")
    texts = (example.input, *example.outputs)
    if not prefix and not any(_ESCAPED.search(text) for text in texts):  # JSON as it is
        outputs = '","'.join(example.outputs)
        return f'["{example.input}",["{outputs}"]]'.encode()
    parts: list[Any] = [*prefix, example.input, list(example.outputs)]
    return _ENCODE(parts).encode("utf-8")


def task_fingerprint(task: Task) -> str:
    """A hash of the task's examples, metric and human instruction, and the checks a task
    file declares."""
    found = _examples_fingerprint(task)
    if task.checks is None:
        return found
    checks = json.dumps(list(task.checks), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{found}\x1f{checks}".encode()).hexdigest()[:16]


def _examples_fingerprint(task: Task) -> str:
    header = header_bytes(task.name, task.metric, task.human_instruction)
    if task.test_examples is None:
        known = getattr(task.examples, "fingerprint", None)
        found = known(header) if known is not None else None
        if found is not None:
            return str(found)
    return digest(header, task.examples, task.test_examples or ())


def digest(header: bytes, examples: Iterable[Example], test: Iterable[Example] = ()) -> str:
    hashed = hashlib.sha256(header)
    for example in examples:
        hashed.update(example_bytes(example))
    for example in test:
        hashed.update(example_bytes(example, "test"))
    return hashed.hexdigest()[:16]
