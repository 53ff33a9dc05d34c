"""GET /v1/studies/{id}/answers: every answer of the journal, paged in its order, filtered by
candidate or pool, read once off the event loop and kept between pages; every parameter
checked (a 400 naming it); the same token and browser rules as every route; in the OpenAPI
document."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.service.answers import MAX_LIMIT
from engine.service.app import ANSWERS
from engine.study.journal import read_records
from tests.service.helpers import Service, running_service, simulator, study_config

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

TOKEN = "s3cret-token-for-the-answers-0123456789"


async def finished_study(service: Service, **changes: Any) -> str:
    config = study_config(**{"budget_scoring_calls": 100, "test_size": 10, **changes})
    study_id = await service.create(config)
    await service.wait_for(study_id, lambda s: s["done"])
    return study_id


def journal_answers(service: Service, study_id: str) -> list[tuple[Any, ...]]:
    """(pool, arm or role, example, reward, answer) of every answer in the journal, in order."""
    rows = []
    for record in read_records(service.manager.get(study_id).record.journal):
        if record["kind"] == "pull_done":
            rows.append(("scoring", record["arm"], record["example"], record["reward"]))
        elif record["kind"] == "evaluation_done":
            rows.append(("test", record["role"], record["example"], record["reward"]))
        else:
            continue
        rows[-1] += (record.get("answer", ""),)
    return rows


def served(row: dict[str, Any]) -> tuple[Any, ...]:
    who = row["arm"] if row["pool"] == "scoring" else row["role"]
    return (row["pool"], who, row["example"], row["reward"], row["answer"])


async def pages(service: Service, study_id: str, query: str, limit: int) -> list[dict[str, Any]]:
    """Every row, following next_offset from 0."""
    rows: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        path = f"/v1/studies/{study_id}/answers?offset={offset}&limit={limit}{query}"
        status, page = await service.call("GET", path)
        assert status == 200, page
        assert page["offset"] == offset and page["limit"] == limit
        assert len(page["answers"]) <= limit
        rows += page["answers"]
        offset = page["next_offset"]
        assert offset is None or offset == len(rows)
    assert page["total"] == len(rows)
    return rows


async def test_pages_hold_every_answer_of_the_journal_in_order(tmp_path: Path) -> None:
    async with simulator() as base_url, running_service(tmp_path, sim=base_url) as service:
        study_id = await finished_study(service)
        expected = journal_answers(service, study_id)
        assert len(expected) > 100 and any(row[0] == "test" for row in expected)
        assert all(row[4] for row in expected)  # the simulator's answers are kept
        rows = await pages(service, study_id, "", 37)
        assert [served(row) for row in rows] == expected
        assert all(row["instruction"] for row in rows)
        # the built-in task loads as it was: each row has its example's input and output
        assert all(row["input"] and row["expected"] for row in rows)
        numbers = [int(n) for n in re.findall(r"\d+", rows[0]["input"])]
        assert rows[0]["expected"] == [str(max(numbers))]
        status, first = await service.call("GET", f"/v1/studies/{study_id}/answers")
        assert status == 200 and first["limit"] == 100 and first["offset"] == 0
        assert first["with_task"] is True
        assert first["next_offset"] == 100 and first["study_id"] == study_id
        status, past = await service.call("GET", f"/v1/studies/{study_id}/answers?offset=99999")
        assert status == 200 and past["answers"] == [] and past["next_offset"] is None
        # one journal read served every page: an ended study's rows are kept
        assert service.app[ANSWERS].reads == 1


async def test_filters_by_candidate_and_by_pool(tmp_path: Path) -> None:
    async with simulator() as base_url, running_service(tmp_path, sim=base_url) as service:
        study_id = await finished_study(service)
        expected = journal_answers(service, study_id)
        arm_two = await pages(service, study_id, "&arm=2", 10)
        assert {row["arm"] for row in arm_two} == {2}
        searched = [served(row) for row in arm_two if row["pool"] == "scoring"]
        assert searched == [row for row in expected if row[:2] == ("scoring", 2)]
        roles = {row["role"] for row in arm_two if row["pool"] == "test"}  # if it was evaluated
        tested = [served(row) for row in arm_two if row["pool"] == "test"]
        assert tested == [row for row in expected if row[0] == "test" and row[1] in roles]
        test = await pages(service, study_id, "&pool=test", 50)
        assert [served(row) for row in test] == [row for row in expected if row[0] == "test"]
        assert "winner" in {row["role"] for row in test}
        scoring = await pages(service, study_id, "&pool=scoring&arm=0", MAX_LIMIT)
        assert [served(r) for r in scoring] == [r for r in expected if r[:2] == ("scoring", 0)]


async def test_a_running_study_is_read_off_the_event_loop(tmp_path: Path) -> None:
    async with (
        simulator(latency_base_s=0.02) as base_url,
        running_service(tmp_path, sim=base_url) as service,
    ):
        book = service.app[ANSWERS]
        read = book._read
        threads: list[str] = []

        def spy(path: Path) -> Any:
            threads.append(threading.current_thread().name)
            return read(path)

        book._read = spy
        study_id = await service.create(study_config())
        await service.wait_for(
            study_id, lambda s: s["extra"].get("spend", {}).get("scoring_calls", 0) >= 20
        )
        status, page = await service.call("GET", f"/v1/studies/{study_id}/answers?limit=5")
        assert status == 200 and page["total"] >= 20 and len(page["answers"]) == 5
        assert threads and threading.main_thread().name not in threads
        await service.call("DELETE", f"/v1/studies/{study_id}")
        # the study ended: its journal changed, so the next page reads it again, whole
        status, page = await service.call("GET", f"/v1/studies/{study_id}/answers?limit=5")
        assert page["total"] == len(journal_answers(service, study_id))


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("offset=-1", "offset", "Expected `int` >= 0"),
        ("limit=0", "limit", "Expected `int` >= 1"),
        (f"limit={MAX_LIMIT + 1}", "limit", f"<= {MAX_LIMIT}"),
        ("limit=ten", "limit", "Expected `int`"),
        ("arm=x", "arm", "Expected `int | null`"),
        ("arm=99", "arm", "no candidate 99; the study has"),
        ("pool=train", "pool", "scoring"),
        ("page=2", "page", "unknown field"),
        ("limit=5&limit=6", "limit", "given more than once"),
    ],
)
async def test_a_bad_parameter_is_a_400_naming_it(
    tmp_path: Path, query: str, field: str, words: str
) -> None:
    async with simulator() as base_url, running_service(tmp_path, sim=base_url) as service:
        study_id = await finished_study(service, budget_scoring_calls=20)
        status, answer = await service.call("GET", f"/v1/studies/{study_id}/answers?{query}")
        assert status == 400, answer
        assert answer["error"]["field"] == field
        assert answer["error"]["message"].startswith(f"{field}: ")
        assert words in answer["error"]["message"]


async def test_the_token_the_browser_rules_and_an_unknown_study(tmp_path: Path) -> None:
    async with (
        simulator() as base_url,
        running_service(tmp_path, sim=base_url, token=TOKEN) as service,
    ):
        status, created = await service.call(
            "POST", "/v1/studies", {"config": study_config(budget_scoring_calls=20)}, token=TOKEN
        )
        path = f"/v1/studies/{created['id']}/answers"
        status, answer = await service.call("GET", path)
        assert status == 401 and answer["error"]["field"] == "authorization"
        status, _ = await service.call("GET", path, token=TOKEN)
        assert status == 200
        headers = {"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"}
        async with service.session.get(service.url + path, headers=headers) as response:
            assert response.status == 403
        status, answer = await service.call("GET", "/v1/studies/nope/answers", token=TOKEN)
        assert status == 404 and answer["error"]["field"] == "id"


async def test_the_openapi_document_describes_the_route(tmp_path: Path) -> None:
    async with running_service(tmp_path) as service:
        _, document = await service.call("GET", "/openapi.json")
        route = document["paths"]["/v1/studies/{id}/answers"]
        names = {parameter["name"] for parameter in route["parameters"]}
        assert names == {"id", "offset", "limit", "arm", "pool"}
        limit = next(p for p in route["parameters"] if p["name"] == "limit")
        assert limit["schema"]["maximum"] == MAX_LIMIT
        ok = route["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/AnswerPage"}
        assert set(route["get"]["responses"]) == {"200", "400", "401", "404", "409"}
        schemas = document["components"]["schemas"]
        row = schemas["AnswerRow"]["properties"]
        assert {"arm", "instruction", "pool", "example", "answer", "reward"} <= set(row)
