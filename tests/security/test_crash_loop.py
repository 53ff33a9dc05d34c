"""No crash loop: a study the service was running when its process died is resumed once more;
if that start dies too, the study is quarantined -- its record, its snapshot, its journal and
`ape-engine studies` say so with the reason -- and runs again only when asked.

The first test kills real `ape-engine serve` processes with SIGKILL (what the kernel's
out-of-memory killer does). The others run the manager in-process on records as a dead process
leaves them: a retry that runs long enough is a start like any other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.service import StateDir
from engine.study.journal import read_events
from tests.service.helpers import running_service

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}

#: runs for a good while on the in-process simulator: the uniform policy never stops early
SLOW_STUDY = {
    "task": "larger_number",
    "policy": "uniform",
    "sim_latency_s": 0.05,
    "concurrency": 2,
    "budget_scoring_calls": 150,
    "scoring_size": 100,
    "test_size": 10,
    "no_cache": True,
}


class Serve:
    """One `ape-engine serve` process on a state folder."""

    def __init__(self, state: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve", "--port", "0", "--state-dir", str(state)],
            cwd=state.parent,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.said: list[str] = []
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.said.append(line)
            if "listening on" in line:
                self.url = line.split("listening on ")[1].split()[0]
                return
        raise AssertionError("".join(self.said) + self.process.stderr.read())  # type: ignore[union-attr]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def study(self, study_id: str) -> dict[str, Any]:
        status, snapshot = self.call("GET", f"/v1/studies/{study_id}")
        assert status == 200, snapshot
        result: dict[str, Any] = snapshot
        return result

    def wait(self, study_id: str, check: Any, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            snapshot = self.study(study_id)
            if check(snapshot):
                return snapshot
            time.sleep(0.1)
        raise AssertionError(f"study {study_id} never got there: {self.study(study_id)}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=60)
        return "".join(self.said) + out


def scoring(snapshot: dict[str, Any]) -> int:
    return int(snapshot["extra"].get("spend", {}).get("scoring_calls", 0))


@pytest.fixture
def services() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for serve in started:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.communicate()


@pytest.mark.e2e
def test_a_study_whose_retry_dies_too_is_quarantined_and_resumes_when_asked(
    tmp_path: Path, services: list[Serve]
) -> None:
    state = tmp_path / "state"
    first = Serve(state)
    services.append(first)
    status, created = first.call("POST", "/v1/studies", {"config": SLOW_STUDY})
    assert status == 201, created
    study_id, journal = created["id"], Path(created["journal"])
    first.wait(study_id, lambda s: scoring(s) >= 5)
    first.kill()  # the process dies while running the study

    second = Serve(state)  # resumes it once more
    services.append(second)
    assert any("once more: the service died while running it" in line for line in second.said)
    before = second.wait(study_id, lambda s: s["status"] == "running" and scoring(s) > 0)
    second.kill()  # and that start dies too

    third = Serve(state)
    services.append(third)
    snapshot = third.study(study_id)
    assert snapshot["status"] == "quarantined" and snapshot["done"], snapshot
    assert "the service died twice while running this study" in snapshot["message"]
    assert f"POST /v1/studies/{study_id}/resume" in snapshot["message"]
    status, listed = third.call("GET", "/v1/studies")
    assert [s["status"] for s in listed["studies"] if s["id"] == study_id] == ["quarantined"]
    assert third.call("GET", "/health")[1]["running"] == 0  # not resumed on its own
    time.sleep(1.0)
    assert scoring(third.study(study_id)) <= scoring(before) + 4  # nothing ran meanwhile
    last = read_events(journal)[-1]
    assert last.kind == "status_changed" and last.status == "quarantined"  # type: ignore[attr-defined]
    studies = subprocess.run(
        [sys.executable, "-m", "engine", "studies", "--state-dir", str(state)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert study_id in studies.stdout and "quarantined" in studies.stdout, studies.stdout

    status, resumed = third.call("POST", f"/v1/studies/{study_id}/resume", {})
    assert status == 200, resumed
    final = third.wait(study_id, lambda s: s["done"], timeout_s=120)
    assert final["status"] == "finished", final["message"]
    assert third.call("POST", f"/v1/studies/{study_id}/resume", {})[0] == 409  # ended
    third.stop()
    record = json.loads((state / "service" / "studies" / f"{study_id}.json").read_text())
    assert record["state"] == "done" and record["running"] is None


def mark(record_path: Path, *, retry: bool) -> None:
    """Leave a study's record as a process that died running it leaves it."""
    record = json.loads(record_path.read_text())
    record["state"] = "active"
    record["running"] = {"pid": 999_999, "host": "elsewhere", "since": time.time() - 5}
    record["retry"] = retry
    record_path.write_text(json.dumps(record))


STUDY = {
    "task": "larger_number",
    "no_cache": True,
    "budget_scoring_calls": 40,
    "scoring_size": 40,
    "test_size": 6,
}


@pytest.mark.anyio
async def test_a_first_crash_gets_a_retry_and_a_healthy_retry_is_a_start_like_any_other(
    tmp_path: Path,
) -> None:
    async with running_service(tmp_path) as service:
        study_id = await service.create({**STUDY, "sim_latency_s": 0.05, "concurrency": 1})
        await service.wait_for(study_id, lambda s: scoring(s) > 0)
    path = tmp_path / "service" / "studies" / f"{study_id}.json"
    assert json.loads(path.read_text())["running"] is None  # let go of on a clean stop
    mark(path, retry=False)
    async with running_service(tmp_path) as service:
        service.manager.healthy_s = 0.3
        (entry,) = await service.manager.resume_unfinished()
        assert entry.record.retry and entry.record.running is not None
        assert entry.record.running.pid == os.getpid()
        await service.wait_for(study_id, lambda s: scoring(s) > 0)
        await anyio.sleep(0.6)  # past healthy_s: the retry started well
        saved = StateDir(tmp_path).load()[0]
        assert saved.running is not None and not saved.retry
        await service.wait_for(study_id, lambda s: s["done"], timeout_s=60)
    assert StateDir(tmp_path).load()[0].running is None


@pytest.mark.anyio
async def test_a_retry_that_died_is_quarantined_in_its_record_and_journal(
    tmp_path: Path,
) -> None:
    async with running_service(tmp_path) as service:
        study_id = await service.create({**STUDY, "sim_latency_s": 0.05, "concurrency": 1})
        await service.wait_for(study_id, lambda s: scoring(s) > 0)
    path = tmp_path / "service" / "studies" / f"{study_id}.json"
    mark(path, retry=True)
    async with running_service(tmp_path) as service:
        assert await service.manager.resume_unfinished() == []
        snapshot = await service.snapshot(study_id)
        assert snapshot["status"] == "quarantined"
        assert "pid 999999 on elsewhere" in snapshot["message"]
        status, answer = await service.call("PATCH", f"/v1/studies/{study_id}", {"paused": True})
        assert status == 409, answer
    (record,) = StateDir(tmp_path).load()
    assert record.state == "quarantined" and record.running is None
    assert record.error is not None and "died twice" in record.error
