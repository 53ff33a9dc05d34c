"""A service study on several of the operator's endpoints: a request names them as a list, the
study gets each one's URL, key, limits and timeout, and a PATCH changes one endpoint's limits
by its name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import EngineError
from engine.service.operator import Operator
from engine.service.requests import RequestError, parse_create
from engine.settings import StudyConfig

from .helpers import running_service, simulator, study_config

ENDPOINTS: dict[str, Any] = {
    "gpu-a": {"base_url": "http://gpu-a:8000/v1", "models": ["llama-8b"], "rpm": 600},
    "gpu-b": {
        "base_url": "http://gpu-b:8000/v1",
        "models": ["llama-8b", "llama-70b"],
        "api_key_env": "GPU_B_KEY",
        "rpm": 1200,
        "timeout_s": 30,
    },
    "hosted": {"base_url": "https://api.example.com/v1", "models": ["gpt-4o-mini"]},
}


def operator() -> Operator:
    return Operator.decode({"endpoints": ENDPOINTS}, "test")


def test_a_list_of_endpoints_brings_each_ones_url_key_and_limits() -> None:
    settings, names = operator().resolve({"task": "sum", "endpoint": ["gpu-a", "gpu-b"]})
    assert names == {"target": ["gpu-a", "gpu-b"]}
    assert settings["base_url"] is None and settings["model"] == "llama-8b"
    first, second = settings["endpoints"]
    assert (first["name"], first["base_url"], first["rpm"]) == (
        "gpu-a",
        "http://gpu-a:8000/v1",
        600,
    )
    assert (second["name"], second["api_key_env"], second["rpm"], second["timeout_s"]) == (
        "gpu-b",
        "GPU_B_KEY",
        1200,
        30,
    )
    config = StudyConfig.of(**settings)
    assert [one.name for one in config.target.endpoints] == ["gpu-a", "gpu-b"]
    # a list of one is one endpoint
    settings, names = operator().resolve({"task": "sum", "endpoint": ["gpu-b"]})
    assert names == {"target": "gpu-b"} and settings["base_url"] == "http://gpu-b:8000/v1"
    assert settings["endpoints"] == []


@pytest.mark.parametrize(
    ("request_settings", "field"),
    [
        ({"endpoint": ["gpu-a", "nowhere"]}, "config.endpoint[1]"),
        ({"endpoint": ["gpu-a", "gpu-a"]}, "config.endpoint[1]"),
        ({"endpoint": ["gpu-a", "gpu-b"], "model": "llama-70b"}, "config.model"),  # not on gpu-a
        ({"endpoint": ["gpu-b", "hosted"]}, "config.model"),  # no model both serve
    ],
)
def test_a_bad_list_is_refused_by_field(request_settings: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestError) as refused:
        operator().resolve({"task": "sum", **request_settings})
    assert refused.value.field == field


def test_a_resumed_study_takes_its_list_as_the_operator_has_it_now() -> None:
    before = StudyConfig.of(task="sum", model="llama-8b", endpoints=[{"base_url": "http://old/v1"}])  # type: ignore[list-item]
    changes = operator().resumed(before, {"target": ["gpu-a", "gpu-b"]})
    assert [one["base_url"] for one in changes["endpoints"]] == [
        "http://gpu-a:8000/v1",
        "http://gpu-b:8000/v1",
    ]
    with pytest.raises(EngineError, match="'retired' is no longer offered"):
        operator().resumed(before, {"target": ["gpu-a", "retired"]})


def test_a_request_may_not_give_endpoint_tables() -> None:
    settings, _ = parse_create(b'{"config": {"task": "sum", "endpoint": ["a", "b"]}}')
    assert settings["endpoint"] == ["a", "b"]
    with pytest.raises(RequestError, match="belong to the service's operator") as refused:
        parse_create(b'{"config": {"task": "sum", "endpoints": [{"base_url": "http://x/v1"}]}}')
    assert refused.value.field == "config.endpoints"


@pytest.mark.anyio
async def test_a_study_on_two_endpoints_and_one_endpoints_limit_changed(tmp_path: Path) -> None:
    async with (
        simulator(latency_base_s=0.02) as one,
        simulator(latency_base_s=0.02) as two,
        running_service(
            tmp_path,
            operator={
                "endpoints": {
                    "sim-a": {"base_url": one, "models": ["sim-1"], "rpm": 3000},
                    "sim-b": {"base_url": two, "models": ["sim-1"], "rpm": 6000},
                }
            },
        ) as service,
    ):
        study_id = await service.create(study_config(endpoint=["sim-a", "sim-b"], concurrency=8))

        def both_busy(snapshot: dict[str, Any]) -> bool:
            rows = snapshot.get("endpoints", [])
            return len(rows) == 2 and all(row["calls"] > 5 for row in rows)

        snapshot = await service.wait_for(study_id, both_busy)
        assert [row["endpoint"] for row in snapshot["endpoints"]] == ["sim-a", "sim-b"]
        path = f"/v1/studies/{study_id}"
        status, snapshot = await service.call(
            "PATCH", path, {"rate_limits": {"requests_per_minute": 900, "endpoint": "sim-b"}}
        )
        assert status == 200
        limits = {row["endpoint"]: row["requests_per_minute"] for row in snapshot["limiters"]}
        assert limits == {"sim-a": 3000.0, "sim-b": 900.0}
        status, body = await service.call(
            "PATCH", path, {"rate_limits": {"requests_per_minute": 10, "endpoint": "nope"}}
        )
        assert status == 400 and body["error"]["field"] == "rate_limits.endpoint"
        assert "sim-a, sim-b" in body["error"]["message"]
        record = service.manager.get(study_id).record
        assert record.endpoints == {"target": ["sim-a", "sim-b"]}
