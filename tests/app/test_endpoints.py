"""Where a study's calls go: flags first, then the environment as the official client reads it,
then the simulator for a built-in task only; keys and header values never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.app import endpoints
from engine.app.endpoints import header_items, looks_like_key
from engine.cli.flags import command_line_naming
from engine.errors import ConfigError, naming
from engine.settings import StudyConfig


def resolve_endpoints(config: StudyConfig, environ: dict[str, str]) -> StudyConfig:
    """`config` with its endpoint decided, as `prepare` decides it."""
    roles = {"target": config.target, "proposal": config.proposal, "judge": config.judge}
    target, backend = endpoints.resolve_endpoints(roles, config.backend, config.task.name, environ)
    return config.replace(target=target, backend=backend)


def test_a_built_in_task_defaults_to_the_simulator_and_a_file_is_refused() -> None:
    assert resolve_endpoints(StudyConfig.of(task="sum"), {}).backend.kind == "sim"
    with pytest.raises(ConfigError, match='backend="sim"') as caught:  # Python's keywords
        resolve_endpoints(StudyConfig.of(task="capitals.jsonl"), {})
    assert "base_url=URL" in str(caught.value) and "OPENAI_BASE_URL" in str(caught.value)
    with (
        naming(command_line_naming()),  # the command line's flags
        pytest.raises(ConfigError, match="--backend sim") as caught,
    ):
        resolve_endpoints(StudyConfig.of(task="capitals.jsonl"), {})
    assert "--base-url URL --model NAME" in str(caught.value)


def test_the_environment_is_read_as_the_official_client_reads_it() -> None:
    env = {"OPENAI_BASE_URL": "http://gpu:8000/v1", "OPENAI_API_KEY": "sk-x"}
    config = resolve_endpoints(StudyConfig.of(task="capitals.jsonl"), env)
    assert config.target.base_url == "http://gpu:8000/v1"
    assert config.target.api_key_env == "OPENAI_API_KEY"
    # a flag wins; an explicit backend is never redirected (make demo names --backend sim)
    flagged = resolve_endpoints(StudyConfig.of(task="sum", base_url="http://other/v1"), env)
    assert flagged.target.base_url == "http://other/v1"
    demo = resolve_endpoints(StudyConfig.of(task="sum", backend="sim"), env)
    assert demo.target.base_url is None and demo.target.api_key_env is None
    named = resolve_endpoints(StudyConfig.of(task="sum", api_key_env="MINE"), env)
    assert named.target.api_key_env == "MINE"


def test_anthropic_defaults_to_its_api_and_key() -> None:
    config = resolve_endpoints(
        StudyConfig.of(task="sum", protocol="anthropic"), {"ANTHROPIC_API_KEY": "k"}
    )
    assert config.target.base_url == "https://api.anthropic.com/v1"
    assert config.target.api_key_env == "ANTHROPIC_API_KEY"
    with pytest.raises(ConfigError, match="no text completions"):
        resolve_endpoints(StudyConfig.of(task="sum", protocol="anthropic", api="completions"), {})


@pytest.mark.parametrize(
    "value", ["sk-proj-abc123", "sk-ant-api03-xyz", "a1b2c3d4e5f6g7h8i9j0k1l2"]
)
def test_a_key_as_a_variable_name_is_refused_unprinted(value: str) -> None:
    assert looks_like_key(value)
    with pytest.raises(ConfigError, match="looks like a key") as caught:
        resolve_endpoints(StudyConfig.of(task="sum", api_key_env=value), {})
    assert value not in str(caught.value)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "my_key", "VLLM_KEY_2", "AZURE_OPENAI_KEY"])
def test_variable_names_are_names(name: str) -> None:
    assert not looks_like_key(name)


def test_header_values_come_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_KEY", "azure-secret")
    secret = tmp_path / "key"
    secret.write_text("file-secret\n")
    items = header_items(
        {"api-key": "env:AZURE_KEY", "x-other": f"file:{secret}", "x-plain": "v1"}, "headers"
    )
    assert items == (("api-key", "azure-secret"), ("x-other", "file-secret"), ("x-plain", "v1"))
    with pytest.raises(ConfigError, match=r"headers\.api-key: environment variable NOPE"):
        header_items({"api-key": "env:NOPE"}, "headers")
    plain = {"content-type": "application/json; charset=utf-8", "api-version": "2024-10-21"}
    assert resolve_endpoints(StudyConfig.of(task="sum", headers=plain), {}).target.headers == plain
    key = "0123456789abcdef0123456789abcdef"
    with pytest.raises(ConfigError, match="looks like a key") as caught:
        resolve_endpoints(StudyConfig.of(task="sum", headers={"api-key": key}), {})
    assert key not in str(caught.value)
