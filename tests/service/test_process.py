"""`ape-engine serve` as a real process: SIGTERM drains it (exit 0, the journal complete with
its result record), the next start resumes the study, SIGINT does the same; the token is
required and never printed. Also the options: loopback by default, a token elsewhere."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.cli import main as cli_main
from engine.study.journal import read_records

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "process-test-token-0123456789abcdef"


class Server:
    def __init__(self, state_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine",
                "serve",
                "--port",
                "0",
                "--state-dir",
                str(state_dir),
                "--grace",
                "5",
                *extra,
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.url = ""
        deadline = time.monotonic() + 30
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                return
        raise AssertionError(f"the service did not start: {''.join(self.lines)}")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=orjson.dumps(body) if body is not None else None,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read())

    def wait_for(self, study_id: str, check: Any, timeout_s: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status, snapshot = self.call("GET", f"/v1/studies/{study_id}")
            if status == 200 and check(snapshot):
                result: dict[str, Any] = snapshot
                return result
            time.sleep(0.05)
        raise AssertionError(f"study {study_id} never reached the state: {snapshot}")

    def stop(self, signum: int) -> str:
        self.process.send_signal(signum)
        output, _ = self.process.communicate(timeout=30)
        self.lines.append(output)
        assert self.process.returncode == 0, "".join(self.lines)
        return "".join(self.lines)


def scoring(snapshot: dict[str, Any]) -> int:
    return int(snapshot["extra"].get("spend", {}).get("scoring_calls", 0))  # none while starting


def test_sigterm_drains_the_journal_and_a_restart_resumes_the_study(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {"APE_ENGINE_TOKEN": TOKEN}
    server = Server(state, env=env)
    try:
        status, created = server.call(
            "POST",
            "/v1/studies",
            {
                "config": {
                    "task": "larger_number",  # no base_url: the built-in simulator, in-process
                    "sim_latency_s": 0.05,
                    "no_cache": True,
                    "budget_scoring_calls": 100_000,
                    "policy": "uniform",
                    "initial_candidates": 6,
                    "variant_rounds": 0,
                    "concurrency": 4,
                }
            },
        )
        assert status == 201, created
        study_id = created["id"]
        server.wait_for(study_id, lambda s: scoring(s) >= 8)
        request = urllib.request.Request(server.url + "/v1/studies")  # no token
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    finally:
        output = server.stop(signal.SIGTERM)
    assert "SIGTERM" in output
    assert TOKEN not in output
    records = list(read_records(created["journal"]))
    assert records[-1]["kind"] == "finished"
    assert records[-1]["result"]["status"] == "cancelled"
    observed = sum(1 for record in records if record["kind"] == "pull_done")
    assert observed >= 8

    server = Server(state, env=env)  # starts again: resumes the study
    try:
        status, listing = server.call("GET", "/v1/studies")
        assert [study["id"] for study in listing["studies"]] == [study_id]
        snapshot = server.wait_for(study_id, lambda s: scoring(s) > observed + 4)
        assert snapshot["status"] == "running"
    finally:
        output = server.stop(signal.SIGINT)
    assert "resuming" in output
    records = list(read_records(created["journal"]))
    assert records[-1]["kind"] == "finished"
    assert [r["kind"] for r in records].count("study_resumed") == 1


def serve_exit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli_main(["serve", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_binding_beyond_loopback_needs_a_good_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("APE_ENGINE_TOKEN", raising=False)
    state = str(tmp_path / "state")
    code, output = serve_exit(capsys, "--host", "0.0.0.0", "--state-dir", state)
    assert code == 1 and "needs a bearer token" in output
    monkeypatch.setenv("SHORT_TOKEN", "abc")
    code, output = serve_exit(capsys, "--host", "0.0.0.0", "--token-env", "SHORT_TOKEN")
    assert code == 1 and "at least 16 characters" in output and "abc" not in output
    code, output = serve_exit(capsys, "--token-env", "NO_SUCH_VARIABLE_SET")
    assert code == 1 and "NO_SUCH_VARIABLE_SET is not set" in output
    code, output = serve_exit(capsys, "--token-file", str(tmp_path / "missing"))
    assert code == 1 and "--token-file" in output
    code, output = serve_exit(capsys, "--grace", "-1")
    assert code == 1 and "--grace" in output


def test_token_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli.serve import is_loopback, load_token

    monkeypatch.delenv("APE_ENGINE_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert load_token(None, str(token_file)) == TOKEN
    assert load_token(None, None) is None  # nothing set: auth off (loopback only)
    monkeypatch.setenv("APE_ENGINE_TOKEN", TOKEN)
    assert load_token(None, None) == TOKEN
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["serve", "--help"])
    text = capsys.readouterr().out
    for flag in (
        "--host",
        "--port",
        "--state-dir",
        "--grace",
        "--token-env",
        "--token-file",
        "--max-body",
        "--no-resume",
        "--config",
        "--endpoint",
        "--max-concurrency",
        "--cache-max-mb",
        "--task-dir",
        "--templates-dir",
        "--model-dir",
        "--allow-host",
    ):
        assert flag in text
    assert "127.0.0.1" in text and "/v1/studies" in text


def serve_options(*args: str) -> Any:
    from engine.cli import build_parser
    from engine.cli.serve import _options

    return _options(build_parser().parse_args(["serve", *args]))


def test_the_operators_endpoints_folders_and_caps_from_flags_and_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APE_ENGINE_TOKEN", raising=False)
    monkeypatch.setenv("VLLM_API_KEY", "a-key")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "key").write_text("another-key\n")
    toml = tmp_path / "serve.toml"
    toml.write_text(
        'port = 9000\nmax_concurrency = 64\nallow_hosts = ["ape.internal"]\n'
        f'task_dir = "{tmp_path / "tasks"}"\n'
        '[endpoints.gpu]\nbase_url = "http://gpu-box:8000/v1"\nmodels = ["llama"]\n'
        'api_key_env = "VLLM_API_KEY"\nrpm = 600\ntimeout_s = 30\n'
    )
    options = serve_options(
        "--config", str(toml), "--max-concurrency", "128", "--allow-host", "ape.lan",
        "--endpoint", f"openai=https://api.openai.com/v1,models=a;b,api_key_file={tmp_path / 'key'}",
    )  # fmt: skip
    operator = options.operator
    assert options.port == 9000 and operator.max_concurrency == 128  # the flag over the file
    assert options.allowed_hosts == ("ape.internal", "ape.lan")
    assert operator.task_dir == str((tmp_path / "tasks").resolve())
    gpu, openai = operator.endpoints["gpu"], operator.endpoints["openai"]
    assert (gpu.base_url, gpu.models, gpu.rpm, gpu.timeout_s) == (
        "http://gpu-box:8000/v1",
        ["llama"],
        600.0,
        30.0,
    )
    assert openai.models == ["a", "b"] and openai.api_key_file == str(tmp_path / "key")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--endpoint", "gpu"], "give NAME=URL"),
        (["--endpoint", "gpu=ftp://x"], "base_url"),
        (["--endpoint", "gpu=http://x/v1,rpm=fast"], "rpm: not a number"),
        (["--endpoint", "gpu=http://x/v1,rpm=0"], "rpm"),
        (["--endpoint", "gpu=http://x/v1,colour=red"], "colour"),
        (["--endpoint", "gpu=http://x/v1,api_key_env=APE_NO_SUCH_KEY"], "APE_NO_SUCH_KEY"),
        (["--endpoint", "gpu=http://x/v1,api_key_file=/no/such/key"], "api_key_file"),
        (["--max-concurrency", "0"], "max_concurrency"),
        (["--max-concurrency", "1000000"], "max_concurrency"),
        (["--task-dir", "/no/such/folder"], "--task-dir"),
    ],
)
def test_a_bad_operator_setting_is_named_before_the_service_starts(
    monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    from engine.errors import ConfigError

    monkeypatch.delenv("APE_ENGINE_TOKEN", raising=False)
    monkeypatch.delenv("APE_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match=message):
        serve_options(*args)
