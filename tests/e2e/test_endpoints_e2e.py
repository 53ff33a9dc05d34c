"""`ape-engine run` as a new user meets it, in its own process: against servers that refuse or
ignore what real servers refuse or ignore (the simulator acting them out, in its own process),
against nothing at all, and interrupted. Each study adapts and finishes, or stops within seconds
with a message on stderr and in ``--json`` naming the endpoint and what to do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.sim import SimConfig, start_sim_process

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "--budget-scoring-calls", "120", "--initial-candidates", "6", "--variant-rounds", "0",
    "--scoring-size", "40", "--test-size", "20", "--no-cache", "--concurrency", "8",
]  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(extra)
    return env


def ape(
    tmp_path: Path, *argv: str, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None, float]:
    """Run the command in `tmp_path`; its result, the --json it wrote, and its seconds."""
    out = tmp_path / "out.json"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "engine", "run", *argv, "--json", str(out)],
        cwd=tmp_path,
        env=clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.monotonic() - started
    return done, (json.loads(out.read_text()) if out.exists() else None), seconds


@pytest.fixture(autouse=True)
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def sim(**quirks: Any) -> Iterator[str]:
    return start_sim_process(SimConfig(tasks=("sum",), **quirks))


def test_connection_refused_ends_within_5_s_on_stderr_and_in_json(tmp_path: Path) -> None:
    done, result, seconds = ape(
        tmp_path, "--task", "sum", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"
    )
    assert done.returncode == 1 and seconds < 5
    assert "http://127.0.0.1:9/v1" in done.stderr and "cannot connect" in done.stderr
    assert result is not None and result["status"] == "failed"
    assert "cannot connect" in result["error"] and result["endpoints"]["target"]["model"] == "m"


@pytest.mark.parametrize("choices", ["refuse", "ignore"])
def test_a_server_of_one_choice_per_request_still_gets_its_proposals(
    tmp_path: Path, choices: str
) -> None:
    with sim(choices=choices) as url:
        done, result, _ = ape(tmp_path, "--task", "sum", "--base-url", url, *SMALL)
    assert done.returncode == 0, done.stderr
    assert "adapted: one choice per request" in done.stdout
    assert result is not None and result["status"] == "finished" and result["winner"]
    assert len(result["candidates"]) >= 6 and not result["failures"]


def test_a_reasoning_model_gets_max_completion_tokens_and_no_temperature(tmp_path: Path) -> None:
    with sim(reasoning=True) as url:
        done, result, _ = ape(tmp_path, "--task", "sum", "--base-url", url, *SMALL)
    assert done.returncode == 0, done.stderr
    assert "max_completion_tokens instead of max_tokens" in done.stdout
    assert result is not None and result["status"] == "finished" and not result["failures"]
    assert result["winner"]["test_score"] > 0  # the stop sequence applied by the client


def test_a_server_that_wants_a_key_stops_within_2_s_naming_the_variable(tmp_path: Path) -> None:
    with sim(api_keys=("sk-right-key-0123456789",)) as url:
        env = clean_env(MY_KEY="sk-wrong-key-0123456789")
        done, result, seconds = ape(
            tmp_path, "--task", "sum", "--base-url", url, "--api-key-env", "MY_KEY", env=env
        )
    assert done.returncode == 1 and seconds < 2 + 2  # + the interpreter's start
    assert "401" in done.stderr and "$MY_KEY" in done.stderr and "check the API key" in done.stderr
    assert "sk-wrong-key" not in done.stderr + done.stdout
    assert result is not None and "401" in result["error"]


def test_a_server_that_is_not_an_llm_server_stops_within_2_s(tmp_path: Path) -> None:
    with sim(not_json=True) as url:
        done, result, seconds = ape(tmp_path, "--task", "sum", "--base-url", url)
    assert done.returncode == 1 and seconds < 2 + 2
    assert "not an OpenAI-compatible API" in done.stderr and url in done.stderr
    assert result is not None and "not JSON" in result["error"]


def test_the_environment_names_the_endpoint_and_key_as_the_official_client_does(
    tmp_path: Path,
) -> None:
    with sim(api_keys=("sk-env-key-0123456789",)) as url:
        env = clean_env(OPENAI_BASE_URL=url, OPENAI_API_KEY="sk-env-key-0123456789")
        done, result, _ = ape(tmp_path, "--task", "sum", *SMALL, env=env)
    assert done.returncode == 0, done.stderr
    assert result is not None and result["endpoints"]["target"]["base_url"] == url
    assert result["endpoints"]["target"]["api_key_env"] == "OPENAI_API_KEY"
    assert "sk-env-key" not in json.dumps(result) + done.stdout


def test_a_task_file_without_an_endpoint_is_refused(tmp_path: Path) -> None:
    task = tmp_path / "capitals.jsonl"
    task.write_text(
        "".join(json.dumps({"input": f"c{i}", "output": f"p{i}"}) + "\n" for i in range(24))
    )
    done, result, _ = ape(tmp_path, "--task", str(task))
    assert done.returncode == 1 and "--backend sim" in done.stderr and "--base-url" in done.stderr
    assert result is None  # refused before anything, so nothing to write
    asked, result, _ = ape(tmp_path, "--task", str(task), "--backend", "sim", *SMALL)
    assert asked.returncode == 0, asked.stderr
    assert result is not None and result["endpoints"]["backend"] == "sim"


def test_a_key_given_as_a_variable_name_is_refused_unprinted(tmp_path: Path) -> None:
    key = "sk-proj-Abc123Def456Ghi789"
    done, _, _ = ape(tmp_path, "--task", "sum", "--base-url", "http://127.0.0.1:9/v1",
                     "--api-key-env", key)  # fmt: skip
    assert done.returncode == 1 and "looks like a key" in done.stderr
    assert key not in done.stderr + done.stdout


def test_ctrl_c_prints_where_the_study_stands_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", "--task", "sum", "--backend", "sim",
         "--sim-latency", "0.2", "--no-cache", "--json", str(out)],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(4)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "interrupted by Ctrl-C" in stdout and "ape-engine resume" in stdout
    result = json.loads(out.read_text())
    assert result["status"] == "interrupted" and result["spend"]["scoring_calls"] > 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("quirk", "words"),
    [
        ({"api_keys": ("sk-only-this-key-0123",)}, "answered HTTP 401"),
        ({"not_json": True}, "not an OpenAI-compatible API"),
    ],
)
async def test_a_study_on_a_wrong_server_fails_within_2_s_of_starting(
    tmp_path: Path, quirk: dict[str, Any], words: str
) -> None:
    from engine.app import StudyConfig, execute, prepare
    from engine.errors import EndpointError
    from engine.sim import serve_sim

    async with serve_sim(SimConfig(tasks=("sum",), **quirk)) as server:
        config = StudyConfig.of(
            task="sum", base_url=server.base_url, journal=str(tmp_path / "j.jsonl")
        )
        started = time.monotonic()
        with pytest.raises(EndpointError, match=words):
            await execute(prepare(config, environ={}), say=lambda _: None)
        assert time.monotonic() - started < 2
