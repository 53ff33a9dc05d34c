"""The operator's rules turned into a study's settings: endpoints by name with their URL, key,
limits and timeout; models among those an endpoint lists; names inside the operator's folders;
the concurrency within the cap; and a resumed study taking its endpoints as they are now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError, EngineError
from engine.service.operator import Operator
from engine.service.requests import RequestError
from engine.settings import StudyConfig

ENDPOINTS: dict[str, Any] = {
    "gpu": {
        "base_url": "http://gpu-box:8000/v1",
        "models": ["llama-8b", "llama-70b"],
        "api_key_env": "VLLM_API_KEY",
        "rpm": 600,
        "timeout_s": 30,
    },
    "openai": {
        "base_url": "https://api.openai.com/v1",
        "models": ["gpt-4o-mini", "gpt-4o"],
        "api_key_file": "/run/secrets/openai",
        "transport": "lean",
    },
    "open": {"base_url": "http://anything:9000/v1"},
}


def operator(**changes: Any) -> Operator:
    return Operator.decode({"endpoints": ENDPOINTS, **changes}, "test")


def test_an_endpoint_by_name_brings_its_url_key_limits_and_first_model() -> None:
    settings, names = operator().resolve({"task": "sum", "endpoint": "gpu"})
    assert names == {"target": "gpu"}
    assert settings["base_url"] == "http://gpu-box:8000/v1"
    assert settings["api_key_env"] == "VLLM_API_KEY" and settings["api_key_file"] is None
    assert (settings["rpm"], settings["timeout_s"], settings["model"]) == (600.0, 30.0, "llama-8b")
    assert "proposal_model" not in settings and "proposal_base_url" not in settings
    StudyConfig.of(**settings)  # a study's settings, as they are


def test_a_proposal_endpoint_brings_its_own_and_a_model_it_lists() -> None:
    settings, names = operator().resolve(
        {"task": "sum", "endpoint": "gpu", "model": "llama-70b", "proposal_endpoint": "openai"}
    )
    assert names == {"target": "gpu", "proposal": "openai"}
    assert settings["model"] == "llama-70b" and settings["proposal_model"] == "gpt-4o-mini"
    assert settings["proposal_base_url"] == "https://api.openai.com/v1"
    assert settings["proposal_api_key_file"] == "/run/secrets/openai"
    assert settings["proposal_api_key_env"] is None


@pytest.mark.parametrize(
    ("request_settings", "field"),
    [
        ({"endpoint": "nowhere"}, "config.endpoint"),
        ({"endpoint": "gpu", "model": "gpt-4o"}, "config.model"),
        ({"endpoint": "gpu", "proposal_model": "gpt-4o"}, "config.proposal_model"),
        ({"proposal_endpoint": "gpu"}, "config.proposal_endpoint"),
        ({"endpoint": "open"}, "config.model"),  # it lists none: the request must name one
        ({"endpoint": "gpu", "concurrency": 5000}, "config.concurrency"),
        ({"task": "my_task.jsonl"}, "config.task"),  # no task folder
        ({"templates": "t.toml"}, "config.templates"),
        ({"backend": "local", "local_model": "x.gguf"}, "config.local_model"),
    ],
)
def test_what_the_operator_does_not_offer_is_refused_by_its_field(
    request_settings: dict[str, Any], field: str
) -> None:
    with pytest.raises(RequestError) as caught:
        operator().resolve({"task": "sum", **request_settings})
    assert caught.value.field == field and str(caught.value).startswith(field)


def test_names_resolve_inside_the_operators_folders(tmp_path: Path) -> None:
    tasks, templates = tmp_path / "tasks", tmp_path / "templates"
    (tasks / "nlp").mkdir(parents=True)
    templates.mkdir()
    (tasks / "nlp" / "antonyms.jsonl").write_text('{"input": "a", "output": "b"}\n')
    (templates / "short.toml").write_text('scoring = "{instruction} {input}"\n')
    rules = operator(task_dir=str(tasks), templates_dir=str(templates))
    settings, _ = rules.resolve({"task": "nlp/antonyms.jsonl", "templates": "short.toml"})
    assert settings["task"] == str(tasks.resolve() / "nlp" / "antonyms.jsonl")
    assert settings["templates"] == str(templates.resolve() / "short.toml")
    assert rules.resolve({"task": "sum"})[0]["task"] == "sum"  # a built-in name stays one
    for name in ("../x", "/etc/passwd", "nlp/../../x", ".git/config", "nlp/missing.jsonl"):
        with pytest.raises(RequestError, match=r"^config\.task: "):
            rules.resolve({"task": name})


def test_the_default_concurrency_keeps_within_a_lower_cap() -> None:
    assert operator(max_concurrency=8).resolve({"task": "sum"})[0]["concurrency"] == 8
    assert operator().resolve({"task": "sum"})[0]["concurrency"] == 32


def test_a_resumed_study_takes_its_endpoints_as_they_are_now() -> None:
    before = StudyConfig.of(
        task="sum", base_url="http://old:1/v1", model="llama-8b", concurrency=900
    )
    changes = operator(max_concurrency=100).resumed(before, {"target": "gpu"})
    assert changes["base_url"] == "http://gpu-box:8000/v1" and changes["concurrency"] == 100
    with pytest.raises(EngineError, match="no longer offered"):
        operator().resumed(before, {"target": "retired"})


def test_a_bad_endpoint_of_the_operator_is_named() -> None:
    for endpoints, message in (
        ({"x": {"base_url": "ftp://x"}}, "endpoints.x.base_url"),
        ({"x": {"base_url": "http://x", "rpm": -1}}, "endpoints.x.rpm"),
        ({"bad name": {"base_url": "http://x"}}, "endpoints"),
        ({"x": {"base_url": "http://x", "api_key_env": "A", "api_key_file": "/k"}}, "not both"),
    ):
        with pytest.raises(ConfigError, match=message):
            Operator.decode({"endpoints": endpoints}, "serve")
