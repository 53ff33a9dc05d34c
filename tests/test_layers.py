"""The rooms of engine/ import only downwards: the contract `make lint` runs, and proof that it
catches an upward import (on a copy of the package, never the checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=where,
        env={**os.environ, "PYTHONPATH": str(where)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    if not LINT_IMPORTS.exists():
        pytest.skip("import-linter is not installed (make install installs it)")
    shutil.copytree(
        ROOT / "engine", tmp_path / "engine", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.slow
def test_the_contract_holds_and_an_upward_import_breaks_it(copy: Path) -> None:
    kept = lint_imports(copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout
    state = copy / "engine" / "study" / "state.py"
    state.write_text(state.read_text() + "\nimport engine.app  # the study reaching up\n")
    broken = lint_imports(copy)
    assert broken.returncode == 1
    assert "Rooms import only downwards BROKEN" in broken.stdout
    assert "engine.study.state -> engine.app" in broken.stdout


@pytest.mark.slow
def test_the_scheduler_may_not_reach_for_the_event_loop(copy: Path) -> None:
    lucb = copy / "engine" / "search" / "lucb.py"
    lucb.write_text(lucb.read_text() + "\nimport anyio\n")
    broken = lint_imports(copy)
    assert broken.returncode == 1
    assert "The scheduler and the tasks are pure" in broken.stdout and "BROKEN" in broken.stdout
