"""A full disk stops a study cleanly, and the study resumes once space is freed.

On a small tmpfs (mounted where the machine allows it; skipped otherwise), `ape-engine run` with
its journal and response cache on that disk fills it: the cache's failure is reported once and
the study goes on without it; the journal's stops the study with one line on stderr naming the
file and what to do (no traceback), leaving a journal that reads back with at most a torn last
line. After more space, a second and a third resume run until the disk is full again, each
cutting off the torn tail before it appends; then a last one finishes. The simulator, in its own
process, counts every call paid: the calls paid twice never exceed the calls in flight at the
stops. The same runs in-process with a journal writer that writes short and then raises ENOSPC,
on every machine."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from engine.app import StudyConfig, execute, prepare
from engine.app.prepare import prepare_resume
from engine.sim import SimConfig, serve_sim, start_sim_process
from engine.study import journal as journal_module
from engine.study.cache import CachedScorer, ResponseCache
from engine.study.journal import replay_journal
from engine.task.types import Example
from tests.study.fakes import FakeScorer

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 8
PROPOSALS_IN_FLIGHT = 4  # the first batch: 20 candidates, 5 per call
IN_FLIGHT = CONCURRENCY + PROPOSALS_IN_FLIGHT


def paid_in_journal(path: Path) -> int:
    """The calls the journal says were paid for (cached answers are free)."""
    paid = 0
    for line in path.read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn last line
        if record["kind"] in ("pull_done", "evaluation_done") and not record["cached"]:
            paid += 1
        elif record["kind"] == "proposals_done":
            paid += record["calls"] - record["cached_calls"]
    return paid


def scored_twice(path: Path) -> int:
    pulls = [
        (r["arm"], r["example"])
        for r in (orjson.loads(line) for line in path.read_bytes().splitlines())
        if r["kind"] == "pull_done"
    ]
    return len(pulls) - len(set(pulls))


# -- a real small filesystem ---------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MB tmpfs, unmounted at the end; skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0755", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def leave_free(disk: Path, free_bytes: int) -> None:
    """Fill the disk but for `free_bytes` (a filler file; none when None)."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    stat = os.statvfs(disk)
    size = stat.f_bavail * stat.f_frsize - free_bytes
    if size > 0:
        with filler.open("wb") as file:
            os.posix_fallocate(file.fileno(), 0, size)


def engine(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def sim_calls(url: str) -> int:
    async def get() -> Any:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(f"{url}/sim/stats") as answer:
            return await answer.json()

    stats = anyio.run(get)
    return int(stats["by_route"].get("/v1/chat/completions", 0))


def stopped_cleanly(run: subprocess.CompletedProcess[str], journal: Path) -> None:
    """Exit 1, one line on stderr naming the journal and what to do, no traceback."""
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert str(journal) in lines[0] and "No space left on device" in lines[0]
    assert "free some space" in lines[0] and "resume" in lines[0]
    assert "Traceback" not in run.stdout + run.stderr
    assert run.stdout.count("the study goes on without it") <= 1  # a cache failure, said once


@pytest.mark.slow
@pytest.mark.e2e
def test_a_full_disk_stops_the_study_and_three_resumes_finish_it(
    small_disk: Path, tmp_path: Path
) -> None:
    journal, cache = small_disk / "journal.jsonl", small_disk / "cache.sqlite3"
    sim = SimConfig(tasks=("larger_number",), seed=5, latency_base_s=0.005, debug_routes=True)
    with start_sim_process(sim) as url:
        args = [
            "--task", "larger_number", "--base-url", url, "--journal", str(journal),
            "--cache", str(cache), "--scoring-size", "100", "--test-size", "30",
            "--concurrency", str(CONCURRENCY), "--seed", "5",
        ]  # fmt: skip
        stops, torn = 0, False
        for round_ in range(3):
            leave_free(small_disk, 40_000 if round_ == 0 else 24_000)
            before = replay_journal(journal).counts()[1] if journal.exists() else 0
            command = ["run", *args] if round_ == 0 else ["resume", str(journal)]
            run = engine(*command, cwd=tmp_path)
            stopped_cleanly(run, journal)
            stops += 1
            torn = torn or not journal.read_bytes().endswith(b"\n")
            replay = replay_journal(journal)  # whole up to a torn last line at most
            assert replay.counts()[1] > before, "each resume gets further"
        (small_disk / "filler").unlink()
        last = engine("resume", str(journal), "--json", str(tmp_path / "out.json"), cwd=tmp_path)
        assert last.returncode == 0, last.stderr[-2000:]
        paid = sim_calls(url)
    result = orjson.loads((tmp_path / "out.json").read_bytes())
    assert result["status"] == "finished"
    assert scored_twice(journal) == 0
    assert paid - paid_in_journal(journal) <= stops * IN_FLIGHT, (paid, paid_in_journal(journal))
    if torn:  # a stop left a line cut short: the next resume cut it off and kept it
        assert (small_disk / "journal.jsonl.torn").exists()
    print(f"\nfull disk: {stops} stops, {paid} calls paid, {paid_in_journal(journal)} recorded")


# -- a writer that runs out of space, on any machine ----------------------------------------------


class FullDisk:
    """Writes `room` bytes in all, the last of them as a short write, then ENOSPC."""

    def __init__(self, room: int) -> None:
        self.room = room

    def __call__(self, fd: int, data: Any) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        size = min(len(data), self.room, max(1, len(data) // 2))  # short, as a full disk writes
        self.room -= size
        return os.write(fd, bytes(data[:size]))


@pytest.mark.anyio
async def test_a_writer_out_of_space_stops_the_study_and_it_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.study.journal import JournalWriteError

    journal = tmp_path / "journal.jsonl"
    sim = SimConfig(tasks=("larger_number",), seed=5, latency_base_s=0.002)
    config = StudyConfig.of(
        task="larger_number",
        journal=str(journal),
        no_cache=True,
        scoring_size=100,
        test_size=30,
        concurrency=CONCURRENCY,
        seed=5,
    )
    async with serve_sim(sim) as server:
        config = config.replace(base_url=server.base_url)
        stops = 0
        for round_ in range(3):
            monkeypatch.setattr(
                journal_module, "_write", FullDisk(15_000 if round_ == 0 else 10_000)
            )
            prepared = prepare(config) if round_ == 0 else prepare_resume(journal)
            with pytest.raises(JournalWriteError) as caught:
                await execute(prepared, say=lambda _: None)
            stops += 1
            message = str(caught.value)
            assert "\n" not in message and str(journal) in message
            assert "No space left on device" in message and "free some space" in message
            assert journal.read_bytes()[-1:] != b"\n"  # cut mid-line, as a full disk leaves it
            replay_journal(journal)
        monkeypatch.setattr(journal_module, "_write", os.write)
        result = await execute(prepare_resume(journal), say=lambda _: None)
        paid = server.stats()["by_route"].get("/v1/chat/completions", 0)
    assert result.status == "finished", result.reason
    assert (tmp_path / "journal.jsonl.torn").exists()
    assert scored_twice(journal) == 0
    assert paid - paid_in_journal(journal) <= stops * IN_FLIGHT, (paid, paid_in_journal(journal))
    print(f"\nshort writes: {stops} stops, {paid} calls paid, {paid_in_journal(journal)} recorded")


@pytest.mark.anyio
async def test_a_cache_that_cannot_be_written_is_reported_once_and_stands_aside(
    tmp_path: Path,
) -> None:
    said: list[str] = []
    cache = ResponseCache(tmp_path / "cache.sqlite3", say=said.append)
    assert cache._db is not None
    cache._db.close()  # what a full or damaged disk does to it, as the study sees it
    import sqlite3

    cache._db = sqlite3.connect(f"file:{tmp_path / 'cache.sqlite3'}?mode=ro", uri=True)
    scorer = FakeScorer()
    cached = CachedScorer(scorer, cache, {"model": "sim-1"})
    for n in range(5):
        score = await cached.score(f"do it q{n}0", Example(str(n), ("y",), key=str(n)))
        assert not score.cached
    assert scorer.calls == 5  # every call answered; the study never saw the failure
    assert len(said) == 1 and "cannot write to it" in said[0] and "goes on without it" in said[0]
    assert not cache.working


@pytest.mark.anyio
async def test_in_the_service_a_full_disk_stops_the_study_and_a_restart_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.service.helpers import running_service

    study = {
        "task": "larger_number",
        "no_cache": True,
        "scoring_size": 60,
        "test_size": 20,
        "concurrency": 4,
        "sim_latency_s": 0.002,
        "budget_scoring_calls": 400,
    }
    monkeypatch.setattr(journal_module, "_write", FullDisk(12_000))
    async with running_service(tmp_path) as service:
        status, created = await service.call("POST", "/v1/studies", {"config": study})
        assert status == 201, created
        stopped = await service.wait_for(created["id"], lambda s: s["done"], timeout_s=60)
        assert stopped["status"] == "failed"
        assert "No space left on device" in stopped["message"]
        assert service.manager.get(created["id"]).record.state == "active"
    monkeypatch.setattr(journal_module, "_write", os.write)
    async with running_service(tmp_path) as service:
        (resumed,) = await service.manager.resume_unfinished()
        assert resumed.id == created["id"]
        final = await service.wait_for(created["id"], lambda s: s["done"], timeout_s=60)
        assert final["status"] == "finished", final["message"]
        assert final["extra"]["spend"]["scoring_calls"] == 400


# -- the cache gives the journal its room ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.e2e
def test_after_a_full_disk_freeing_space_is_enough_to_resume_the_first_time(
    small_disk: Path, tmp_path: Path
) -> None:
    """A study whose cache filled up its disk earlier: the disk is then filled (to 30 KB),
    the resume stops naming the journal and the cache, the user frees 1 MB -- less than the
    cache would take -- and the next resume finishes: the cache stands aside, its write-ahead
    file does not grow back into the room freed for the journal."""
    journal, cache = small_disk / "journal.jsonl", small_disk / "cache.sqlite3"
    common = ["--sim-latency", "0.002", "--concurrency", str(CONCURRENCY)]
    first = engine(
        "run", "--task", "larger_number", "--journal", str(journal), "--scoring-size", "100",
        "--test-size", "30", "--seed", "5", "--budget-scoring-calls", "300", *common,
        "--cache", str(cache), cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    assert cache.stat().st_size > 0  # the cache holds answers
    leave_free(small_disk, 30_000)  # fill
    stopped = engine(
        "resume", str(journal), "--budget-scoring-calls", "3000", *common, cwd=tmp_path
    )
    stopped_cleanly(stopped, journal)  # stop
    (line,) = [line for line in stopped.stderr.splitlines() if line.strip()]
    assert f"the response cache {str(cache)!r} could not be written either" in line
    leave_free(small_disk, 1_000_000)  # free
    finished = engine(
        "resume", str(journal), "--budget-scoring-calls", "3000", *common, cwd=tmp_path
    )  # resume
    assert finished.returncode == 0, finished.stderr[-2000:]  # finish, the first time
    assert replay_journal(journal).finished is not None
    assert "response cache" in finished.stdout  # it said why it stood aside
    assert scored_twice(journal) == 0


def test_a_cache_that_stands_aside_for_space_gives_back_its_write_ahead_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.study import cache as cache_module

    said: list[str] = []
    path = tmp_path / "cache.sqlite3"
    cache = ResponseCache(path, say=said.append)
    other = ResponseCache(path, say=said.append)  # a second reader keeps the file from closing
    for n in range(150):  # several batches, all in the write-ahead file
        cache.put(f"key-{n}", ["x" * 1000, n])
        cache._commit()
    wal = tmp_path / "cache.sqlite3-wal"
    assert wal.stat().st_size > 100_000
    monkeypatch.setattr(cache_module, "_free_bytes", lambda _path: 1_000_000)  # a full disk
    cache.put("one-more", ["x", 1])
    assert not cache.working and cache.out_of_space is not None
    assert "1.0 MB free, less than the 16 MB it leaves to the journal" in cache.out_of_space
    assert wal.stat().st_size == 0  # checkpointed and truncated: its space is given back
    assert len(said) == 1 and str(path) in said[0] and "goes on without it" in said[0]
    assert other.get("key-149") == ["x" * 1000, 149]  # nothing kept was lost
    other.close()


def test_a_cache_on_a_full_disk_says_so_and_gives_back_what_it_can(small_disk: Path) -> None:
    """SQLite's own "disk is full" on a real full disk: the cache stands aside once, marks
    itself out of space (the journal's message then names it), and its write-ahead file is
    no larger than before the failure."""
    said: list[str] = []
    path = small_disk / "cache.sqlite3"
    cache = ResponseCache(path, say=said.append, reserve_bytes=0)  # only the disk stops it
    leave_free(small_disk, 200_000)
    n = 0
    while cache.working and n < 10_000:
        cache.put(f"key-{n}", ["y" * 2000, n])
        n += 1
    assert not cache.working, "the disk never filled"
    assert cache.out_of_space == "No space left on device"
    assert len(said) == 1 and "cannot write to it" in said[0]
    (small_disk / "filler").unlink()
    again = ResponseCache(path, say=said.append)  # reopens whole on the freed disk
    assert again.working and again.get("key-0") == ["y" * 2000, 0]
    again.close()
