"""A journal made by a short study against the in-process simulator, shared by the tests of
the commands that read studies back (`studies`, `show`, `export`, the HTML report)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine.app import optimize
from engine.study.events import StudyFinished
from engine.study.journal import read_events

#: A short study: four proposals and the human instruction, 120 scoring calls, a test pool
#: of 20 examples; the simulator answers in a second.
SHORT: dict[str, object] = {
    "backend": "sim",
    "initial_candidates": 4,
    "variant_rounds": 0,
    "include_human": True,
    "budget_scoring_calls": 120,
    "scoring_size": 40,
    "test_size": 20,
    "no_cache": True,
    "concurrency": 8,
    "seed": 3,
}


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder (.ape layout) holding one finished study of `larger_number`."""
    root = tmp_path_factory.mktemp("state")
    journal = root / "journals" / "larger_number-finished.jsonl"
    result = optimize("larger_number", journal=str(journal), **SHORT)  # type: ignore[arg-type]
    assert result.status == "finished", result.reason
    return root


@pytest.fixture(scope="session")
def journal(study_dir: Path) -> Path:
    return study_dir / "journals" / "larger_number-finished.jsonl"


@pytest.fixture
def unfinished(journal: Path, tmp_path: Path) -> Path:
    """The same study cut before its final record, as a killed process leaves it, written to
    an hour ago."""
    lines = journal.read_bytes().splitlines(keepends=True)
    kept = len(lines) - sum(isinstance(e, StudyFinished) for e in read_events(journal))
    path = tmp_path / "cut.jsonl"
    path.write_bytes(b"".join(lines[:kept]))
    hour_ago = path.stat().st_mtime - 3600
    os.utime(path, (hour_ago, hour_ago))
    return path


def copy_of(journal: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(journal, folder / journal.name))
