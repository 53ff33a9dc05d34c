"""One writer per journal, one service per state folder, with real processes.

Two `ape-engine resume` of one journal started together used to both run and both pay, scoring
the same (candidate, example) pairs twice until the journal was refused as damaged. Now the
second is refused at once, naming the process that holds the journal (pid, host, since when),
and the first finishes a journal that reads back whole. A holder killed with SIGKILL leaves its
lock file behind: the next resume takes it over. Readers take no lock: `show` reads a journal
while it is being written. A second `serve` on one state folder is refused at once too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from engine.app import optimize
from engine.study.journal import replay_journal
from engine.study.locks import journal_lock_path

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}

#: a study that runs for several seconds on the in-process simulator: the uniform policy never
#: stops early, and each call takes 80 ms with two in flight
SLOW = ["--sim-latency", "0.08", "--concurrency", "2"]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """A short finished study, to be resumed with a larger budget."""
    path = tmp_path / "study.jsonl"
    result = optimize(
        "larger_number",
        journal=str(path),
        backend="sim",
        policy="uniform",
        initial_candidates=4,
        variant_rounds=0,
        budget_scoring_calls=20,
        scoring_size=100,
        test_size=6,
        no_cache=True,
    )
    assert result.status == "finished"
    return path


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def engine(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def held_by(lock: Path, pid: int, timeout_s: float = 30.0) -> None:
    """Wait until `lock` says process `pid` holds it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if orjson.loads(lock.read_bytes())["pid"] == pid:
                return
        except (OSError, orjson.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{lock} never named pid {pid}")


def pulls(path: Path) -> list[tuple[int, int]]:
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [(r["arm"], r["example"]) for r in records if r["kind"] == "pull_done"]


@pytest.fixture
def reaper() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_second_resume_is_refused_at_once_and_the_first_finishes(
    journal: Path, tmp_path: Path, reaper: list[subprocess.Popen[str]]
) -> None:
    first = start("resume", str(journal), "--budget-scoring-calls", "220", *SLOW, cwd=tmp_path)
    reaper.append(first)
    held_by(journal_lock_path(journal), first.pid)
    began = time.monotonic()
    second = engine("resume", str(journal), "--budget-scoring-calls", "220", *SLOW, cwd=tmp_path)
    refused_in = time.monotonic() - began
    assert first.poll() is None, "the first resume was still running"
    shown = engine("show", str(journal), cwd=tmp_path)  # a reader is never blocked
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 1, second.stdout[-1000:] + second.stderr
    message = second.stderr.strip()
    assert f"journal {str(journal)!r}: in use by pid {first.pid} on " in message, message
    assert ", since " in message and "one writer" in message and "Traceback" not in message
    assert "task 'larger_number'" not in second.stdout  # refused before it read anything
    assert refused_in < 15, refused_in
    assert shown.returncode == 0 and "larger_number" in shown.stdout, shown.stderr
    replay = replay_journal(journal)  # whole, and nothing scored twice
    assert replay.finished is not None and replay.finished.status == "finished"
    assert len(pulls(journal)) == len(set(pulls(journal))) == 220
    assert not journal_lock_path(journal).exists()  # let go of when the first ended


def test_a_lock_left_by_a_killed_writer_is_taken_over(
    journal: Path, tmp_path: Path, reaper: list[subprocess.Popen[str]]
) -> None:
    lock = journal_lock_path(journal)
    dead = start("resume", str(journal), "--budget-scoring-calls", "220", *SLOW, cwd=tmp_path)
    reaper.append(dead)
    held_by(lock, dead.pid)
    before = len(pulls(journal))
    deadline = time.monotonic() + 30
    while len(pulls(journal)) < before + 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    assert lock.exists()  # left behind, naming the dead process
    resumed = engine("resume", str(journal), "--budget-scoring-calls", "220", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(pulls(journal)) == len(set(pulls(journal))) == 220
    assert not lock.exists()


def test_a_second_service_on_one_state_folder_is_refused_at_once(
    tmp_path: Path, reaper: list[subprocess.Popen[str]]
) -> None:
    state = tmp_path / "state"
    first = start("serve", "--port", "0", "--state-dir", str(state), cwd=tmp_path)
    reaper.append(first)
    assert first.stdout is not None
    line = first.stdout.readline()
    assert "listening on" in line, line + (first.stderr.read() if first.poll() else "")
    second = engine("serve", "--port", "0", "--state-dir", str(state), cwd=tmp_path, timeout=30)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=30)
    assert first.returncode == 0
    assert second.returncode == 1, second.stdout + second.stderr
    message = second.stderr.strip()
    assert f"state directory {str(state)!r}: in use by pid {first.pid} on " in message, message
    assert "ape-engine serve" in message and "--state-dir" in message
    assert "listening" not in second.stdout
