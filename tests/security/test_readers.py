"""The commands that read studies back (`studies`, `show`, `export`) open only regular files:
a FIFO in the journals folder (which would block a reader for ever) or a symbolic link to
/dev/zero (which would be read without end) is named on stderr and skipped, and the real
journals beside them are read as usual. Each command runs as its own process, with a timeout
that turns a hang into a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.app import optimize

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder with one finished study, a FIFO and a link to /dev/zero."""
    root = tmp_path_factory.mktemp("state")
    journals = root / "journals"
    result = optimize(
        "larger_number",
        journal=str(journals / "larger_number-abc.jsonl"),
        backend="sim",
        initial_candidates=3,
        variant_rounds=0,
        budget_scoring_calls=30,
        scoring_size=20,
        test_size=6,
        no_cache=True,
        seed=1,
    )
    assert result.status == "finished"
    os.mkfifo(journals / "a-fifo.jsonl")
    (journals / "b-zero.jsonl").symlink_to("/dev/zero")
    return root


def engine(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,  # a reader blocked on the FIFO, or reading /dev/zero, fails here
    )


def skipped_both(stderr: str, state: Path) -> None:
    fifo, zero = state / "journals" / "a-fifo.jsonl", state / "journals" / "b-zero.jsonl"
    assert f"{fifo}" in stderr and "not a regular file (a FIFO)" in stderr, stderr
    assert f"{zero}" in stderr and "not a regular file (a character device)" in stderr, stderr
    assert "Traceback" not in stderr


def test_studies_names_and_skips_what_is_not_a_regular_file(state: Path) -> None:
    listed = engine("studies", "--state-dir", str(state), cwd=state)
    assert listed.returncode == 0, listed.stderr
    assert "larger_number" in listed.stdout
    skipped_both(listed.stderr, state)


@pytest.mark.parametrize("command", [["show"], ["export", "--csv"]])
def test_show_and_export_by_id_skip_what_is_not_a_regular_file(
    state: Path, command: list[str]
) -> None:
    """An id is looked for in every journal's first line: the FIFO and the device are not."""
    shown = engine(*command, "abc-no-such-id", "--state-dir", str(state), cwd=state)
    assert shown.returncode == 2 and "no study of that id" in shown.stderr, shown.stderr
    skipped_both(shown.stderr, state)


@pytest.mark.parametrize("name", ["a-fifo.jsonl", "b-zero.jsonl"])
def test_show_of_such_a_file_by_its_path_says_what_it_is(state: Path, name: str) -> None:
    shown = engine("show", str(state / "journals" / name), cwd=state)
    assert shown.returncode == 2, shown.stderr
    assert "not a regular file" in shown.stderr and "Traceback" not in shown.stderr
