"""What an ended study shows through the service: the winner's instruction with its held-out
score and interval in the snapshot (typed, in the OpenAPI document), kept across a restart of
the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.study.journal import read_records
from engine.study.snapshot import StudySnapshot
from tests.service.helpers import running_service, simulator, study_config

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def check_score(score: dict[str, Any], test_size: int) -> None:
    low, high = score["test_ci"]
    assert 0.0 <= low <= score["test_score"] <= high <= 1.0
    assert score["n"] + score["failed"] == test_size


async def test_a_finished_study_shows_the_winner_on_the_test_pool(tmp_path: Path) -> None:
    async with simulator() as base_url:
        async with running_service(tmp_path, sim=base_url) as service:
            study_id = await service.create(study_config(budget_scoring_calls=60, test_size=20))
            final = await service.wait_for(study_id, lambda s: s["done"])
            assert final["status"] == "finished"
            held = final["held_out"]
            winner = held["winner"]
            assert winner["arm"] == final["winner"]
            assert winner["instruction"] == final["arms"][final["winner"]]["instruction"]
            check_score(winner, 20)
            check_score(held["runner_up"], 20)
            assert held["runner_up"]["arm"] != winner["arm"]
            human = held["human"]
            check_score(human, 20)
            assert human["arm"] is None and human["instruction"]
            # the same numbers as the journal's result record, rounded alike
            result = read_records(service.manager.get(study_id).record.journal)[-1]["result"]
            assert result["winner"]["test_score"] == winner["test_score"]
            assert result["winner"]["test_ci"] == winner["test_ci"]
            rebuilt = StudySnapshot.from_json(final)
            assert rebuilt.held_out is not None and rebuilt.held_out.winner is not None
            assert rebuilt.held_out.winner.instruction == winner["instruction"]
        # a restarted service lists the ended study with the same held-out scores
        async with running_service(tmp_path, sim=base_url) as service:
            await service.manager.resume_unfinished()
            again = await service.snapshot(study_id)
            assert again["held_out"] == held
        # and, without its saved snapshot, from its journal's result record
        (tmp_path / "service" / "final" / f"{study_id}.json").unlink()
        async with running_service(tmp_path, sim=base_url) as service:
            await service.manager.resume_unfinished()
            again = await service.snapshot(study_id)
            assert again["held_out"] == held and again["winner"] == final["winner"]


async def test_a_running_study_has_no_held_out_scores_yet(tmp_path: Path) -> None:
    async with (
        simulator(latency_base_s=0.02) as base_url,
        running_service(tmp_path, sim=base_url) as service,
    ):
        study_id = await service.create(study_config())
        snapshot = await service.wait_for(study_id, lambda s: s["status"] == "running")
        assert snapshot["held_out"] is None
        await service.call("DELETE", f"/v1/studies/{study_id}")


async def test_the_openapi_document_describes_the_held_out_scores(tmp_path: Path) -> None:
    async with running_service(tmp_path) as service:
        _, document = await service.call("GET", "/openapi.json")
        schemas = document["components"]["schemas"]
        held = schemas["StudySnapshot"]["properties"]["held_out"]
        assert {"$ref": "#/components/schemas/HeldOutResult"} in held["anyOf"]
        assert set(schemas["HeldOutResult"]["properties"]) == {"winner", "runner_up", "human"}
        score = schemas["HeldOutScore"]
        assert set(score["required"]) == {"instruction", "test_score", "test_ci", "n"}
        assert score["properties"]["test_ci"]["prefixItems"] == [{"type": "number"}] * 2
