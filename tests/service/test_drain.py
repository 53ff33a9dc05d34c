"""Stopping the service drains its studies (calls in flight finish, each journal gets its
result record) and the next start resumes what it was running, and only that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.study.journal import read_records
from tests.service.helpers import (
    Service,
    running_service,
    simulator,
    simulator_server,
    spent,
    study_config,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def journal(service: Service, study_id: str) -> list[dict[str, Any]]:
    return list(read_records(service.manager.get(study_id).record.journal))


async def test_drain_finishes_calls_in_flight_and_restart_resumes_unfinished_studies(
    tmp_path: Path,
) -> None:
    async with simulator_server(latency_base_s=0.05) as sim:
        base_url = str(sim.base_url)
        async with running_service(tmp_path, sim=base_url) as service:
            running = await service.create(study_config(concurrency=4))
            paused = await service.create(study_config(seed=1))
            cancelled = await service.create(study_config(seed=2))
            finished = await service.create(study_config(seed=3, budget_scoring_calls=12))
            for study_id in (running, paused, cancelled):
                await service.wait_for(study_id, lambda s: spent(s, "scoring_calls") >= 4)
            for study_id in (paused, cancelled):
                await service.call("PATCH", f"/v1/studies/{study_id}", {"paused": True})
                await service.wait_for(study_id, lambda s: s["throughput"]["in_flight"] == 0)
            await service.call("DELETE", f"/v1/studies/{cancelled}")
            await service.wait_for(finished, lambda s: s["done"])
            assert (await service.snapshot(running))["throughput"]["in_flight"] > 0

            await service.manager.drain(5.0)

            status, answer = await service.call("POST", "/v1/studies", {"config": study_config()})
            assert status == 503 and "shutting down" in answer["error"]["message"]
            records = journal(service, running)
            assert records[-1]["kind"] == "finished"
            result = records[-1]["result"]
            assert result["status"] == "cancelled"
            assert "service stopped" in result["reason"]
            # the calls in flight finished: every request the simulator got was recorded
            sent = sum(
                r.get("calls", 0) if r["kind"] == "proposals_done" else 1
                for name in (running, paused, cancelled, finished)
                for r in journal(service, name)
                if r["kind"] in ("pull_done", "proposals_done")
            )
            evaluated = next(
                r["result"]["spend"]["evaluation_calls"]
                for r in journal(service, finished)
                if r["kind"] == "finished"
            )
            # besides them, each study's preflight: GET /models and one tiny call
            stats = sim.stats()
            preflights = stats["by_route"].get("/v1/models", 0)
            assert stats["requests"] - 2 * preflights == sent + evaluated
            observations = sum(1 for r in records if r["kind"] == "pull_done")
            arms = sum(1 for r in records if r["kind"] == "candidate_added")
            states = {
                name: service.manager.get(name).record.state
                for name in (running, paused, cancelled, finished)
            }
            assert states == {
                running: "active",
                paused: "active",
                cancelled: "cancelled",
                finished: "done",
            }

        async with running_service(tmp_path, sim=base_url) as service:
            resumed = await service.manager.resume_unfinished()
            assert sorted(entry.id for entry in resumed) == sorted([running, paused])
            snapshot = await service.wait_for(
                running, lambda s: spent(s, "scoring_calls") > observations
            )
            assert snapshot["status"] == "running"
            assert len(snapshot["arms"]) == arms  # candidates replayed, not proposed again
            snapshot = await service.wait_for(paused, lambda s: s["status"] == "paused")
            status, listing = await service.call("GET", "/v1/studies")
            # the ended studies are listed too, as they ended, with their results
            listed = {s["id"]: s for s in listing["studies"]}
            assert sorted(listed) == sorted([running, paused, cancelled, finished])
            assert listed[finished]["status"] == "finished" and listed[finished]["done"]
            assert listed[cancelled]["status"] == "cancelled" and listed[cancelled]["done"]
            ended = await service.snapshot(finished)
            assert ended["extra"]["result"]["winner"]["instruction"]
            assert ended["arms"] and ended["winner"] is not None
            types = [r["kind"] for r in journal(service, running)]
            assert "study_resumed" in types[types.index("finished") :]


async def test_grace_zero_cancels_calls_in_flight_and_the_journal_is_still_complete(
    tmp_path: Path,
) -> None:
    async with (
        simulator(latency_base_s=0.5) as base_url,
        running_service(tmp_path, sim=base_url) as service,
    ):
        study_id = await service.create(study_config(concurrency=8))
        await service.wait_for(study_id, lambda s: s["throughput"]["in_flight"] >= 4)
        with anyio.fail_after(3):
            await service.manager.drain(0.0)
        records = journal(service, study_id)
        assert records[-1]["kind"] == "finished"
        assert records[-1]["result"]["status"] == "cancelled"
        assert service.manager.get(study_id).record.state == "active"
