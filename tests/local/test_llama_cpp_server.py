"""A real server people run: the stock llama-cpp-python server (``python -m llama_cpp.server``,
the ``[server]`` extra of the same pinned llama-cpp-python) with SmolLM2. It ignores ``n`` (one
choice comes back), so the study adapts; and its echoed log-probabilities are shifted by one
token for a model without a BOS token, so log-probability scoring stops before the first
scoring call, naming the endpoint and the fix."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STUDY = [
    "--task", "antonyms", "--model", "smollm2", "--initial-candidates", "2",
    "--candidates-per-call", "2", "--variant-rounds", "0", "--scoring-size", "8",
    "--test-size", "4", "--demo-size", "6", "--budget-scoring-calls", "12", "--concurrency", "2",
    "--no-cache",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"llama_cpp.server exited with {process.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/models", timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"llama_cpp.server did not answer at {url} within {timeout_s} s")


@pytest.fixture(scope="module")
def llama_server(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as error:
        if os.environ.get("APE_REQUIRE_LOCAL"):
            pytest.fail(f"APE_REQUIRE_LOCAL is set but llama_cpp.server cannot import: {error}")
        pytest.skip(f"llama-cpp-python's server is not installed ({error}); make install-local")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path),
             "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "1024", "--n_threads", "2", "--verbose", "False"],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run(
    tmp_path: Path, url: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "out.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-m", "engine", "run", "--base-url", url, *STUDY, *extra,
         "--json", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return done, json.loads(out.read_text()) if out.exists() else {}


def test_an_execution_accuracy_study_through_it_finishes_with_a_winner(
    llama_server: str, tmp_path: Path
) -> None:
    done, result = _run(tmp_path, llama_server)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "adapted: one choice per request" in done.stdout  # it ignores n
    assert result["status"] == "finished" and result["winner"] is not None
    assert result["winner"]["n"] == 4 and not result["failures"]
    assert result["endpoints"]["target"]["base_url"] == llama_server


def test_logprob_scoring_stops_before_the_first_scoring_call(
    llama_server: str, tmp_path: Path
) -> None:
    done, result = _run(tmp_path, llama_server, "--scoring", "logprob", "--api", "completions")
    assert done.returncode == 1
    assert "endpoint 'target'" in done.stderr and "prompt logprobs" in done.stderr
    assert "shifted by one token" in done.stderr
    assert "use execution-accuracy scoring" in done.stderr  # the fix
    assert result["status"] == "failed" and result.get("spend") is None  # nothing was scored
