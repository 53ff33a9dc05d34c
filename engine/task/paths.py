"""Paths built from data stay inside their folder.

A task's name comes from its file (a BIG-Bench ``name`` may hold anything, ``../`` included) and
a service request names files by name; neither may reach outside the folder meant for it.
`file_stem` makes a name one harmless path component; `inside` resolves a relative name in a
folder (symbolic links followed) and refuses one that leaves it.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from engine.errors import ConfigError

__all__ = ["file_stem", "inside"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def file_stem(name: str, *, limit: int = 64) -> str:
    """`name` as one path component: letters, digits, ``_`` and ``-`` (a run of anything else
    becomes one ``_``; none at either end), at most `limit` characters; ``task`` when nothing
    is left. ``../../escaped`` becomes ``escaped``."""
    stem = _UNSAFE.sub("_", name).strip("_-")[:limit]
    return stem or "task"


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, resolved, for a relative `name` of plain parts (``a/b.json``); a
    `ConfigError` for an absolute name, a hidden or parent part (``..``), or a path that a
    symbolic link takes out of `folder`."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or not all(_PART.match(part) for part in parts):
        raise ConfigError(
            f"{name!r}: give a name inside the folder (letters, digits, _ . - and /; no part "
            "starting with a dot, no absolute path)"
        )
    root = folder.resolve()
    path = (root / Path(*parts)).resolve()
    if not path.is_relative_to(root):
        raise ConfigError(f"{name!r}: leads outside its folder")
    return path
