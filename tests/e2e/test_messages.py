"""Every message that says what to do names what the user typed: the flag on the command line,
the key in a TOML file, the keyword in Python (issue 26, items 5-7). A dry run checks what the
run checks and says where the calls would go; a 400 to ``GET /models`` points at the key;
`top` with no service says how to start one; `tasks FILE` names a file's columns as `run`
does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from engine.app import StudyConfig, execute, prepare
from engine.errors import EndpointError
from engine.sim import SimConfig, start_sim_process

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--initial-candidates", "4", "--variant-rounds", "0", "--budget-scoring-calls", "40",
         "--no-cache", "--concurrency", "4"]  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def ape(
    cwd: Path, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *argv],
        cwd=cwd, env=clean_env() if env is None else env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "capitals.csv"
    rows = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Peru", "Lima"),
            ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Chile", "Santiago"), ("Cuba", "Havana"),
            ("Greece", "Athens"), ("Norway", "Oslo"), ("Kenya", "Nairobi"), ("Iran", "Tehran")]  # fmt: skip
    path.write_text("country,capital\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return path


# -- item 5: the dry run checks what the run checks --------------------------------------------


def test_a_dry_run_refuses_an_unset_key_variable_as_the_run_does(
    tmp_path: Path, task_file: Path
) -> None:
    argv = ("run", "--task", str(task_file), "--input-field", "country", "--output-field",
            "capital", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
            "--api-key-env", "APE_NO_SUCH_KEY")  # fmt: skip
    dry = ape(tmp_path, *argv, "--dry-run")
    run = ape(tmp_path, *argv)
    assert dry.returncode == run.returncode == 1
    assert "dry run: no call made" not in dry.stdout
    said = dry.stderr.strip().splitlines()[-1]
    assert said == run.stderr.strip().splitlines()[-1]  # the same refusal, word for word
    assert "--api-key-env APE_NO_SUCH_KEY" in said and "is not set" in said
    assert "--api-key-file" in said and "api_key_file" not in said.replace("--api-key-file", "")


def test_a_dry_run_says_which_endpoint_model_and_key_it_would_use(
    tmp_path: Path, task_file: Path
) -> None:
    fields = ("--input-field", "country", "--output-field", "capital")
    given = ape(tmp_path, "run", "--task", str(task_file), *fields, "--base-url",
                "http://gpu:8000/v1", "--model", "llama", "--api-key-env", "MY_KEY", "--dry-run",
                env=clean_env(MY_KEY="sk-dry-run-key-0123456789"))  # fmt: skip
    assert given.returncode == 0, given.stderr
    assert (
        "would run on: endpoint; target 'llama' at http://gpu:8000/v1 with the key in $MY_KEY; "
        "proposals 'llama' at http://gpu:8000/v1 with the key in $MY_KEY"
    ) in given.stdout.splitlines()
    # with only the official client's variables set, it says it takes them
    env = clean_env(OPENAI_BASE_URL="https://api.example.com/v1", OPENAI_API_KEY="sk-x")
    taken = ape(tmp_path, "run", "--task", str(task_file), *fields, "--model", "gpt-4o-mini",
                "--dry-run", env=env)  # fmt: skip
    assert taken.returncode == 0, taken.stderr
    line = next(x for x in taken.stdout.splitlines() if x.startswith("would run on:"))
    assert "target 'gpt-4o-mini' at https://api.example.com/v1 (from $OPENAI_BASE_URL)" in line
    assert "with the key in $OPENAI_API_KEY" in line and "sk-x" not in taken.stdout


# -- item 6: messages name what the user typed -------------------------------------------------


def test_a_refused_key_names_the_flags_on_the_command_line_and_the_keys_in_a_file(
    tmp_path: Path,
) -> None:
    with start_sim_process(SimConfig(tasks=("sum",), api_keys=("sk-right-0123456789",))) as url:
        env = clean_env(MY_KEY="sk-wrong-0123456789")
        flags = ape(tmp_path, "run", "--task", "sum", "--base-url", url, "--api-key-env",
                    "MY_KEY", *SMALL, env=env)  # fmt: skip
        (tmp_path / "study.toml").write_text(
            f'task = "sum"\nbase_url = "{url}"\napi_key_env = "MY_KEY"\n'
        )
        toml = ape(tmp_path, "run", "--config", "study.toml", *SMALL, env=env)
    assert flags.returncode == toml.returncode == 1
    assert "401" in flags.stderr and "$MY_KEY" in flags.stderr
    assert "(--api-key-env or --api-key-file)" in flags.stderr
    assert "api_key_env /" not in flags.stderr
    assert "(api_key_env or --api-key-file)" in toml.stderr  # the file's key; the flag it lacks


@pytest.fixture
async def gateway() -> AsyncIterator[str]:
    """A gateway that answers a key it refuses with 400, as LiteLLM's proxy does."""
    refusal = {"error": {"message": "Authentication Error, Invalid proxy server token passed.",
                         "type": "auth_error", "code": "400"}}  # fmt: skip

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(refusal, status=400)

    app = web.Application()
    app.router.add_get("/v1/models", refuse)
    app.router.add_post("/v1/chat/completions", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


@pytest.mark.anyio
async def test_a_400_from_models_points_at_the_key(
    gateway: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_KEY", "sk-gateway-wrong-0123456789")
    config = StudyConfig.of(
        task="sum", base_url=gateway, model="m", api_key_env="GATEWAY_KEY",
        journal=str(tmp_path / "j.jsonl"),
    )  # fmt: skip
    with pytest.raises(EndpointError) as refused:
        await execute(prepare(config, environ={}), say=lambda _: None)
    message = str(refused.value)
    assert "HTTP 400" in message and "GET /models was refused too" in message
    assert "check the key (api_key_env or api_key_file; sent the key from $GATEWAY_KEY)" in message
    assert "sk-gateway-wrong" not in message


def test_top_with_no_service_says_how_to_start_one(tmp_path: Path) -> None:
    done = ape(tmp_path, "top", "http://127.0.0.1:9")
    assert done.returncode == 1
    assert "no service answers at http://127.0.0.1:9" in done.stderr
    assert "ape-engine serve" in done.stderr and "Cannot connect" not in done.stderr


# -- item 7: tasks FILE takes the fields run takes ---------------------------------------------


def test_tasks_names_the_columns_of_a_file_and_its_message_says_how(
    tmp_path: Path, task_file: Path
) -> None:
    refused = ape(tmp_path, "tasks", str(task_file))
    assert refused.returncode == 1
    said = refused.stderr.strip()
    assert "missing column 'input'; the header has country, capital" in said
    assert "give --input-field country --output-field capital" in said
    described = ape(tmp_path, "tasks", str(task_file), "--input-field", "country",
                    "--output-field", "capital")  # fmt: skip
    assert described.returncode == 0, described.stderr
    assert "examples: 12" in described.stdout and "Paris" in described.stdout
    # run reads the file the same way, and says the same
    run = ape(tmp_path, "run", "--task", str(task_file), "--backend", "sim", "--dry-run")
    assert run.returncode == 1 and "give --input-field country --output-field capital" in run.stderr


def test_a_misread_format_names_the_flag_of_the_command(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("hello world\n")
    assert "give --format as one of" in ape(tmp_path, "tasks", str(path)).stderr
    run = ape(tmp_path, "run", "--task", str(path), "--backend", "sim")
    assert "give --task-format as one of" in run.stderr
    assert run.returncode == 1
