"""One request cannot take the service down, and the service keeps what it knows. Every number
has a range where it enters, the same on create and PATCH: a study's concurrency within the cap
its operator sets, integers past what a machine holds and rates that would stall a study are
refused, and a refusal changes nothing. A 405 says which methods a route takes. After a
restart, the studies that ended are still there, with their results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.service.helpers import running_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

# a study on the built-in simulator (no endpoint), small enough to end in a second or two
SMALL: dict[str, Any] = {
    "task": "larger_number",
    "no_cache": True,
    "budget_scoring_calls": 40,
    "initial_candidates": 4,
    "variant_rounds": 0,
    "scoring_size": 40,
    "test_size": 10,
    "policy": "uniform",
    "concurrency": 4,
}


def raw(body: Any) -> bytes:
    return json.dumps(body).encode()  # integers of any size, as a client may send them


@pytest.mark.parametrize("concurrency", [100_000_000, 100_001, 5_000, 1_001])
async def test_a_study_cannot_ask_for_more_concurrency_than_the_operator_allows(
    tmp_path: Path, concurrency: int
) -> None:
    async with running_service(tmp_path) as service:
        body = {"config": {**SMALL, "concurrency": concurrency}}
        status, answer = await service.call("POST", "/v1/studies", body)
        assert status == 400, answer
        assert answer["error"]["field"] == "config.concurrency"
        assert service.manager.entries == {}


async def test_a_patch_cannot_raise_concurrency_past_the_cap(tmp_path: Path) -> None:
    async with running_service(tmp_path) as service:
        study = {**SMALL, "budget_scoring_calls": 100_000, "sim_latency_s": 0.05}
        status, created = await service.call("POST", "/v1/studies", {"config": study})
        assert status == 201, created
        path = f"/v1/studies/{created['id']}"
        await service.wait_for(created["id"], lambda s: s["status"] == "running")
        for concurrency in (1_001, 100_000, 100_000_000):
            status, answer = await service.call("PATCH", path, {"concurrency": concurrency})
            assert status == 400 and answer["error"]["field"] == "concurrency", answer
            snapshot = await service.snapshot(created["id"])
            assert snapshot["throughput"]["concurrency"] == 4
        status, answer = await service.call("PATCH", path, {"concurrency": 1_000})
        assert status == 200 and answer["throughput"]["concurrency"] == 1_000
        await service.call("DELETE", path)


NUMBERS = [
    "seed",
    "budget_scoring_calls",
    "budget_tokens",
    "budget_usd",
    "initial_candidates",
    "max_candidates",
    "demo_size",
    "concurrency",
]


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("value", [2**64 + 1, 10**400, -(2**64), 1e308])
async def test_a_number_past_its_range_is_refused_on_create(
    tmp_path: Path, name: str, value: int | float
) -> None:
    async with running_service(tmp_path) as service:
        body = raw({"config": {**SMALL, name: value}})
        status, answer = await service.call("POST", "/v1/studies", raw=body)
        assert status == 400, answer
        assert answer["error"]["field"] in (f"config.{name}", "body"), answer
        assert service.manager.entries == {}


@pytest.mark.parametrize(
    "body",
    [
        {"concurrency": 2**64 + 1},
        {"budgets": {"scoring_calls": 2**64}},
        {"budgets": {"usd": 1e308}},
        {"rate_limits": {"requests_per_minute": 1e-300}},
        {"endpoint_rate_limits": {"tokens_per_minute": 1e-300}},
        {"rate_limits": {"requests_per_minute": 1e300}},
        {"new_candidate_share": 1.0},
        {"drop": [2**64]},
    ],
)
async def test_a_number_past_its_range_is_refused_on_patch(
    tmp_path: Path, body: dict[str, Any]
) -> None:
    async with running_service(tmp_path) as service:
        study = {**SMALL, "budget_scoring_calls": 100_000, "sim_latency_s": 0.05}
        status, created = await service.call("POST", "/v1/studies", {"config": study})
        assert status == 201, created
        path = f"/v1/studies/{created['id']}"
        await service.wait_for(created["id"], lambda s: s["status"] == "running")
        before = await service.snapshot(created["id"])
        status, answer = await service.call("PATCH", path, raw=raw(body))
        assert status == 400, answer
        after = await service.snapshot(created["id"])
        assert after["throughput"]["concurrency"] == before["throughput"]["concurrency"]
        assert [b["limit"] for b in after["budgets"]] == [b["limit"] for b in before["budgets"]]
        await service.call("DELETE", path)


async def test_a_405_says_which_methods_the_route_takes(tmp_path: Path) -> None:
    async with running_service(tmp_path) as service:
        for method, path, allowed in (
            ("PUT", "/v1/studies", {"GET", "POST"}),
            ("POST", "/v1/studies/x", {"GET", "PATCH", "DELETE"}),
            ("DELETE", "/health", {"GET"}),
        ):
            async with service.session.request(method, service.url + path) as response:
                assert response.status == 405, (method, path)
                given = {m.strip() for m in response.headers.get("Allow", "").split(",")}
                assert allowed <= given, (method, path, response.headers.get("Allow"))
                body = await response.json()
                assert body["error"]["message"]


async def test_ended_studies_are_listed_with_their_results_after_a_restart(
    tmp_path: Path,
) -> None:
    async with running_service(tmp_path) as service:
        status, created = await service.call("POST", "/v1/studies", {"config": SMALL})
        assert status == 201, created
        finished_id = created["id"]
        final = await service.wait_for(finished_id, lambda s: s["done"], timeout_s=60)
        assert final["status"] == "finished"
        study = {**SMALL, "budget_scoring_calls": 100_000, "sim_latency_s": 0.05}
        status, created = await service.call("POST", "/v1/studies", {"config": study})
        cancelled_id = created["id"]
        await service.wait_for(cancelled_id, lambda s: s["status"] == "running")
        await service.call("DELETE", f"/v1/studies/{cancelled_id}")
    async with running_service(tmp_path) as service:
        await service.manager.resume_unfinished()
        status, listing = await service.call("GET", "/v1/studies")
        listed = {study["id"]: study for study in listing["studies"]}
        assert set(listed) == {finished_id, cancelled_id}
        assert listed[finished_id]["status"] == "finished"
        assert listed[cancelled_id]["status"] == "cancelled"
        status, snapshot = await service.call("GET", f"/v1/studies/{finished_id}")
        assert status == 200, snapshot
        assert snapshot["done"] and snapshot["winner"] == final["winner"]
        result = snapshot["extra"]["result"]
        assert result["winner"]["instruction"] and 0 <= result["winner"]["test_score"] <= 1
        with anyio.fail_after(2):  # at once: an ended study has nothing to wait for
            path = f"/v1/studies/{finished_id}"
            status, answer = await service.call("PATCH", path, {"paused": True})
        assert status == 409 and "finished" in answer["error"]["message"], answer
