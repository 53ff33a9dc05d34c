"""End to end in a pseudo-terminal: `ape-engine top` attached to a (stand-in) service and
`ape-engine run --tui` on the built-in simulator; keys pressed, the change seen in the service
or in the study's journal, and the terminal left as it was found."""

from __future__ import annotations

import signal
import termios
import time
from pathlib import Path

import orjson
import pytest

from tests.ui.fake_service import FakeService, ServiceThread
from tests.ui.pty_driver import PtyProcess

pytestmark = pytest.mark.e2e


def wait_until(condition, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def cooked(process: PtyProcess) -> bool:
    """Is the terminal in line mode with echo (as the program found it)?"""
    mode = process.final_mode or termios.tcgetattr(process.leader)
    lflag = int(mode[3])  # type: ignore[call-overload]
    return bool(lflag & termios.ICANON and lflag & termios.ECHO and lflag & termios.ISIG)


def test_top_in_a_pty_keys_patch_the_service() -> None:
    service = FakeService()
    study = service.add("s1")
    with ServiceThread(service) as server:
        top = PtyProcess(["top", server.url, "--study", "s1"], width=100, height=32)
        try:
            top.wait_for("q quit")
            top.wait_for("★ leader")
            top.press(b"C")
            wait_until(lambda: service.patches == [{"concurrency": 20}])
            top.wait_for("concurrency 16 -> 20")
            top.press(b"\x1b[Bd")  # down one row, then drop it
            wait_until(lambda: len(service.patches) == 2)
            top.press(b"p")
            wait_until(lambda: len(service.patches) == 3)
            top.wait_for("● paused")
            assert not cooked(top)
            top.press(b"q")
            code = top.finish()
        finally:
            if top.process.poll() is None:
                top.process.kill()
    assert code == 0 and cooked(top)
    assert service.patches == [{"concurrency": 20}, {"drop": [3]}, {"paused": True}]
    assert study.current.throughput.concurrency == 20 and study.current.status == "paused"
    assert not any(method == "DELETE" for method, _, _ in service.log)  # q only detached


def test_sigterm_gives_the_terminal_back() -> None:
    service = FakeService()
    service.add("s1")
    with ServiceThread(service) as server:
        top = PtyProcess(["top", server.url])
        try:
            top.wait_for("q quit")
            assert not cooked(top)
            top.process.send_signal(signal.SIGTERM)
            code = top.finish()
        finally:
            if top.process.poll() is None:
                top.process.kill()
    assert code == 0  # it quit as q does: detached
    assert cooked(top)
    assert "\x1b[?1049l" in top.text()  # and left the alternate screen


def test_run_tui_in_a_pty_keys_change_the_study(tmp_path: Path) -> None:
    journal = tmp_path / "tui.jsonl"
    run = PtyProcess(
        [
            "run",
            "--task",
            "larger_number",
            "--sim-latency",
            "0.05",
            "--scoring-size",
            "100",
            "--budget-scoring-calls",
            "20000",
            "--concurrency",
            "4",
            "--journal",
            str(journal),
            "--no-cache",
            "--tui",
        ],
        width=100,
        height=32,
    )
    try:
        run.wait_for("★ leader", 60)
        shown = run.wait_for("q quit")
        assert not cooked(run)
        run.press(b"b")  # scoring budget down: 80 % of 20000
        run.wait_for("scoring budget 20000 -> 16000 calls", after=shown)
        run.press(b"+")
        run.wait_for("concurrency 4 -> 5", after=shown)
        run.press(b"q")
        code = run.finish(60)
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert code == 0  # the user ended it and got the report: not a failure
    assert cooked(run)
    text = run.text()
    after_screen = text[text.rfind("\x1b[?1049l") :]  # what was printed after the live screen
    assert "cancelled by the user" in after_screen
    records = [orjson.loads(line) for line in journal.read_bytes().splitlines()]
    budgets = [r for r in records if r["kind"] == "budget_changed"]
    assert budgets and budgets[-1]["name"] == "scoring_calls" and budgets[-1]["limit"] == 16000
    result = next(r["result"] for r in records if r["kind"] == "finished")
    assert result["status"] == "cancelled" and result["reason"] == "cancelled by the user"


def test_run_tui_without_a_terminal_prints_plain_lines(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.ui.pty_driver import ROOT

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "run",
            "--task",
            "larger_number",
            "--scoring-size",
            "50",
            "--budget-scoring-calls",
            "300",
            "--journal",
            str(tmp_path / "plain.jsonl"),
            "--no-cache",
            "--tui",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if " scoring calls | " in line]
    assert lines and lines[-1].startswith("finished ")
    assert "\x1b[" not in done.stdout  # no screen drawing into a pipe


def test_top_in_a_pty_against_the_real_service(tmp_path: Path) -> None:
    """`ape-engine serve` with a token, a study on the built-in simulator, `ape-engine top`
    attached in a pseudo-terminal: each key's change is read back from the service's API."""
    from tests.service.test_process import TOKEN, Server

    server = Server(tmp_path / "state", env={"APE_ENGINE_TOKEN": TOKEN})
    top: PtyProcess | None = None
    try:
        status, created = server.call(
            "POST",
            "/v1/studies",
            {
                "config": {
                    "task": "larger_number",
                    "sim_latency_s": 0.05,
                    "no_cache": True,
                    "budget_scoring_calls": 20_000,
                    "scoring_size": 100,
                    "concurrency": 4,
                }
            },
        )
        assert status == 201, created
        study_id = created["id"]
        top = PtyProcess(["top", server.url], env={"APE_ENGINE_TOKEN": TOKEN})
        top.wait_for(f"study {study_id}", 30)
        top.wait_for("★ leader", 30)

        def study() -> dict:  # type: ignore[type-arg]
            code, body = server.call("GET", f"/v1/studies/{study_id}")
            assert code == 200, body
            return body  # type: ignore[no-any-return]

        top.press(b"C")
        wait_until(lambda: study()["throughput"]["concurrency"] == 5)
        top.press(b"b")  # 80 % of 20000
        wait_until(
            lambda: {b["name"]: b["limit"] for b in study()["budgets"]}["scoring_calls"] == 16000
        )
        top.press(b"p")
        wait_until(lambda: study()["status"] == "paused")
        top.wait_for("● paused")
        top.press(b"p")
        wait_until(lambda: study()["status"] == "running")
        top.press(b"q")
        assert top.finish() == 0
        assert cooked(top)
        after = study()
        assert not after["done"] and after["status"] == "running"  # top only detached
        assert TOKEN not in top.text()
    finally:
        if top is not None and top.process.poll() is None:
            top.process.kill()
        server.process.terminate()
        server.process.wait(30)
