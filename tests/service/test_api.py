"""Every route of the service against the in-process simulator: create (config inline, from a
TOML file, task by name or inline), list, inspect, patch (each effect seen in the snapshot),
cancel, the event stream, health and the OpenAPI document; bad bodies answered 4xx naming the
field with nothing changed; authentication on and off."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

from engine.settings import StudyConfig
from engine.study.journal import read_records
from engine.study.snapshot import StudySnapshot
from tests.service.helpers import Service, running_service, simulator, spent, study_config

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

TOKEN = "s3cret-token-for-the-tests-0123456789"


def state_files(service: Service) -> list[str]:
    """What a request may have written: journals, tasks, study records."""
    root = service.state.root
    return sorted(
        str(path.relative_to(root))
        for folder in ("journals", "tasks", "service")
        for path in (root / folder).rglob("*")
        if path.is_file()
    )


async def test_health_and_openapi_describe_every_route(tmp_path: Path) -> None:
    async with running_service(tmp_path) as service:
        status, health = await service.call("GET", "/health")
        assert status == 200
        assert health["status"] == "ok" and health["studies"] == 0 and health["version"]
        status, document = await service.call("GET", "/openapi.json")
        assert status == 200
        assert document["openapi"].startswith("3.1")
        served = {
            (route.method.lower(), route.resource.canonical)
            for route in service.app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
        assert len(served) == 10
        documented = {
            (method, path)
            for path, item in document["paths"].items()
            for method in item
            if method != "parameters"
        }
        assert documented == served
        settings = document["components"]["schemas"]["StudySettings"]["properties"]
        assert settings["budget_scoring_calls"]["type"] == ["integer", "null"]
        assert "journal" not in settings  # the service chooses it
        assert "securitySchemes" not in document["components"]  # auth off


async def test_create_list_inspect_and_finish_a_study_by_task_name(tmp_path: Path) -> None:
    async with simulator() as base_url, running_service(tmp_path, sim=base_url) as service:
        config = study_config(budget_scoring_calls=60, policy="lucb", concurrency=8)
        status, created = await service.call("POST", "/v1/studies", {"config": config})
        assert status == 201
        study_id = created["id"]
        assert created["status"] in ("starting", "running")
        assert Path(created["journal"]).parent == tmp_path / "journals"
        status, listing = await service.call("GET", "/v1/studies")
        assert status == 200
        (summary,) = listing["studies"]
        assert summary["id"] == study_id and summary["task"] == "larger_number"
        assert summary["policy"] == "lucb"
        assert set(summary) >= {"id", "task", "policy", "status", "elapsed_s", "done"}
        final = await service.wait_for(study_id, lambda s: s["done"])
        assert final["status"] == "finished"
        assert spent(final, "scoring_calls") <= 60
        assert final["arms"] and final["winner"] is not None
        rebuilt = StudySnapshot.from_json(final)  # the JSON is the contract's snapshot
        assert rebuilt.study_id == study_id and rebuilt.done
        records = list(read_records(created["journal"]))
        assert records[0]["kind"] == "study_started" and records[-1]["kind"] == "finished"
        status, listing = await service.call("GET", "/v1/studies")
        assert listing["studies"][0]["done"] is True
        status, health = await service.call("GET", "/health")
        assert health["studies"] == 1


async def test_inline_task_and_a_task_by_name_from_the_task_folder(tmp_path: Path) -> None:
    examples = [{"input": f"{a} {b}", "output": str(max(a, b))} for a in range(12) for b in (3, 7)]
    tasks = tmp_path / "tasks"
    (tasks / "numbers").mkdir(parents=True)
    (tasks / "numbers" / "bigger.jsonl").write_text(
        "\n".join(orjson.dumps(example).decode() for example in examples) + "\n"
    )
    small = {
        "no_cache": True,
        "policy": "uniform",
        "initial_candidates": 4,
        "variant_rounds": 0,
        "test_size": 4,
        "concurrency": 4,
        "budget_scoring_calls": 20,
        "endpoint": "sim",
    }
    async with (
        simulator() as base_url,
        running_service(
            tmp_path / "state", sim=base_url, operator={"task_dir": str(tasks)}
        ) as service,
    ):
        status, created = await service.call(
            "POST",
            "/v1/studies",
            {
                "config": small,
                "task": {
                    "name": "bigger",
                    "examples": examples,
                    "human_instruction": "Write the larger number.",
                },
            },
        )
        assert status == 201, created
        final = await service.wait_for(created["id"], lambda s: s["done"])
        assert final["task"] == "bigger"
        assert final["status"] == "finished"
        assert spent(final, "scoring_calls") <= 20
        assert final["extra"]["result"]["winner"]["instruction"]
        header = next(iter(read_records(created["journal"])))
        settings = StudyConfig.from_json(header["config"])
        task_file = anyio.Path(settings.task.name)
        assert await task_file.is_file()
        assert Path(task_file).is_relative_to(tmp_path / "state" / "tasks")
        assert settings.budgets.scoring_calls == 20
        assert settings.target.base_url == base_url  # the operator's, by its name

        status, created = await service.call(
            "POST", "/v1/studies", {"config": {**small, "task": "numbers/bigger.jsonl"}}
        )
        assert status == 201, created
        final = await service.wait_for(created["id"], lambda s: s["done"])
        assert final["task"] == "bigger" and final["status"] == "finished"


BAD_CREATES: list[tuple[Any, int, str | None]] = [
    (b"{not json", 400, "body"),
    ([1, 2], 400, "body"),
    ({"config": {"task": "larger_number", "colour": "red"}}, 400, "config.colour"),
    (
        {"config": {"task": "larger_number", "budget_scoring_calls": "many"}},
        400,
        "config.budget_scoring_calls",
    ),
    (
        {"config": {"task": "larger_number", "budget_scoring_calls": 2.5}},
        400,
        "config.budget_scoring_calls",
    ),
    ({"config": {"task": "larger_number", "policy": "best"}}, 400, "config.policy"),
    ({"config": {"task": "larger_number", "concurrency": 0}}, 400, "config.concurrency"),
    ({"config": {"task": "larger_number", "journal": "/tmp/x.jsonl"}}, 400, "config.journal"),
    ({"config": {"task": "larger_number", "metric": "vibes"}}, 400, "config.metric"),
    ({"config": {}}, 400, "config.task"),
    ({"config": {"task": "no/such/file.jsonl"}}, 400, "config.task"),
    ({"config": {"task": "larger_number"}, "extra": 1}, 400, "extra"),
    ({"config_file": "study.toml"}, 400, "config_file"),
    ({"config": {"task": "larger_number", "base_url": "http://x/v1"}}, 400, "config.base_url"),
    ({"config": {"task": "larger_number", "endpoint": "nowhere"}}, 400, "config.endpoint"),
    ({"config": {"task": "larger_number", "cache": "/tmp/c"}}, 400, "config.cache"),
    (
        {"config": {"task": "larger_number"}, "task": {"name": "t", "examples": []}},
        400,
        "task.examples",
    ),
    (
        {"task": {"name": "t", "examples": [{"input": "a", "output": "b"}, {"input": "c"}]}},
        400,
        "task.examples[1].output",
    ),
    (
        {"task": {"name": "bad name!", "examples": [{"input": "a", "output": "b"}]}},
        400,
        "task.name",
    ),
    ({"task": {"name": "tiny", "examples": [{"input": "a", "output": "b"}]}}, 400, "task"),
    (
        {
            "config": {"task": "larger_number"},
            "task": {"name": "t", "examples": [{"input": "a", "output": "b"}]},
        },
        400,
        "task",
    ),
    (
        {"config": {"task": "larger_number", "prices": {"m": {"input": "free"}}}},
        400,
        "config.prices.m.input",
    ),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_CREATES)
async def test_a_bad_create_body_names_the_field_and_changes_nothing(
    tmp_path: Path, body: Any, status: int, field: str | None
) -> None:
    async with running_service(tmp_path) as service:
        before = state_files(service)
        raw = body if isinstance(body, bytes) else None
        got, answer = await service.call("POST", "/v1/studies", None if raw else body, raw=raw)
        assert got == status, answer
        assert answer["error"]["field"] == field, answer
        assert answer["error"]["message"]
        assert field is None or field.split(".")[-1].split("[")[0] in answer["error"]["message"]
        assert service.manager.entries == {}
        assert state_files(service) == before


async def test_a_body_over_the_limit_is_refused_with_413(tmp_path: Path) -> None:
    async with running_service(tmp_path, max_body=2048) as service:
        body = {"task": {"name": "big", "examples": [{"input": "x" * 4000, "output": "y"}]}}
        status, answer = await service.call("POST", "/v1/studies", body)
        assert status == 413
        assert answer["error"]["field"] == "body" and "2048" in answer["error"]["message"]
        assert service.manager.entries == {}


async def test_unknown_study_and_route_are_404(tmp_path: Path) -> None:
    async with running_service(tmp_path) as service:
        for method in ("GET", "PATCH", "DELETE"):
            status, answer = await service.call(
                method, "/v1/studies/nope", {} if method == "PATCH" else None
            )
            assert status == 404 and answer["error"]["field"] == "id"
        status, answer = await service.call("GET", "/v1/studies/nope/events")
        assert status == 404
        status, answer = await service.call("GET", "/v2/elsewhere")
        assert status == 404 and "openapi" in answer["error"]["message"]


def row(snapshot: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    return next(item for item in snapshot[key] if item["name"] == name)


async def test_patch_effects_show_in_the_snapshot(tmp_path: Path) -> None:
    async with (
        simulator(latency_base_s=0.02) as base_url,
        running_service(tmp_path, sim=base_url) as service,
    ):
        study_id = await service.create(study_config())
        snapshot = await service.wait_for(study_id, lambda s: len(s["arms"]) >= 3)
        path = f"/v1/studies/{study_id}"

        status, snapshot = await service.call("PATCH", path, {"concurrency": 5})
        assert status == 200 and snapshot["throughput"]["concurrency"] == 5

        status, snapshot = await service.call(
            "PATCH", path, {"budgets": {"scoring_calls": 5000, "usd": 2.5, "seconds": None}}
        )
        assert row(snapshot, "budgets", "scoring_calls")["limit"] == 5000
        assert row(snapshot, "budgets", "usd")["limit"] == 2.5

        status, snapshot = await service.call("PATCH", path, {"new_candidate_share": 0.4})
        assert snapshot["proposals"]["new_candidate_share"] == pytest.approx(0.4)

        status, snapshot = await service.call(
            "PATCH", path, {"rate_limits": {"requests_per_minute": 900}}
        )
        assert {lim["requests_per_minute"] for lim in snapshot["limiters"]} == {900.0}
        status, snapshot = await service.call(
            "PATCH", path, {"endpoint_rate_limits": {"requests_per_minute": 600}}
        )
        assert {lim["requests_per_minute"] for lim in snapshot["limiters"]} == {600.0}
        status, snapshot = await service.call(
            "PATCH",
            path,
            {
                "rate_limits": {"requests_per_minute": None},
                "endpoint_rate_limits": {"requests_per_minute": None},
            },
        )
        assert {lim["requests_per_minute"] for lim in snapshot["limiters"]} == {None}

        status, snapshot = await service.call("PATCH", path, {"drop": [0]})
        assert snapshot["arms"][0]["state"] == "dropped"

        status, snapshot = await service.call("PATCH", path, {"paused": True})
        assert snapshot["status"] == "paused"
        await anyio.sleep(0.2)  # calls in flight finish
        before = spent(await service.snapshot(study_id), "scoring_calls")
        await anyio.sleep(0.3)
        assert spent(await service.snapshot(study_id), "scoring_calls") == before  # no new call
        status, snapshot = await service.call("PATCH", path, {"paused": False})
        assert snapshot["status"] == "running"
        await service.wait_for(study_id, lambda s: spent(s, "scoring_calls") > before)

        journal = [r for r in read_records(service.manager.get(study_id).record.journal)]
        changes = [(r["name"], r["limit"]) for r in journal if r["kind"] == "budget_changed"]
        assert ("scoring_calls", 5000) in changes
        assert {"kind": "arm_dropped", "arm": 0} in journal


def settings(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Everything a PATCH can change, as the snapshot shows it."""
    return {
        "status": snapshot["status"],
        "concurrency": snapshot["throughput"]["concurrency"],
        "budgets": {b["name"]: b["limit"] for b in snapshot["budgets"]},
        "share": snapshot["proposals"]["new_candidate_share"],
        "limits": [
            (x["requests_per_minute"], x["tokens_per_minute"]) for x in snapshot["limiters"]
        ],
        "dropped": [a["arm"] for a in snapshot["arms"] if a["state"] == "dropped"],
    }


BAD_PATCHES: list[tuple[Any, str]] = [
    ({"concurrency": 0}, "concurrency"),
    ({"concurrency": True}, "concurrency"),
    ({"budgets": {"calls": 5}}, "budgets.calls"),
    ({"budgets": {"usd": -1}}, "budgets.usd"),
    ({"budgets": {"scoring_calls": 1.5}}, "budgets.scoring_calls"),
    ({"rate_limits": {"requests_per_minute": 0}}, "rate_limits.requests_per_minute"),
    ({"rate_limits": {"rpm": 10}}, "rate_limits.rpm"),
    ({"new_candidate_share": 1.0}, "new_candidate_share"),
    ({"paused": "yes"}, "paused"),
    ({"drop": [999]}, "drop[0]"),
    ({"drop": "1"}, "drop"),
    ({"colour": "red"}, "colour"),
    # a good field beside a bad one: nothing changes (concurrency stays)
    ({"concurrency": 7, "budgets": {"tokens": "lots"}}, "budgets.tokens"),
    ({"concurrency": 7, "drop": [0, 500]}, "drop[1]"),
]


async def test_a_bad_patch_names_the_field_and_changes_nothing(tmp_path: Path) -> None:
    async with (
        simulator(latency_base_s=0.02) as base_url,
        running_service(tmp_path, sim=base_url) as service,
    ):
        study_id = await service.create(study_config())
        await service.wait_for(study_id, lambda s: len(s["arms"]) >= 3)
        path = f"/v1/studies/{study_id}"
        for body, field in BAD_PATCHES:
            before = await service.snapshot(study_id)
            status, answer = await service.call("PATCH", path, body)
            assert status == 400, (body, answer)
            assert answer["error"]["field"] == field, (body, answer)
            assert settings(await service.snapshot(study_id)) == settings(before), body
        status, answer = await service.call("PATCH", path, raw=b"[")
        assert status == 400 and answer["error"]["field"] == "body"


async def test_cancel_ends_the_study_with_its_result_record(tmp_path: Path) -> None:
    async with (
        simulator(latency_base_s=0.02) as base_url,
        running_service(tmp_path, sim=base_url) as service,
    ):
        study_id = await service.create(study_config())
        await service.wait_for(study_id, lambda s: spent(s, "scoring_calls") >= 5)
        status, answer = await service.call("DELETE", f"/v1/studies/{study_id}")
        assert status == 200 and answer == {"id": study_id, "status": "cancelled"}
        entry = service.manager.get(study_id)
        records = list(read_records(entry.record.journal))
        assert records[-1]["kind"] == "finished"
        assert records[-1]["result"]["status"] == "cancelled"
        assert entry.record.state == "cancelled"  # not resumed by the next start
        status, answer = await service.call("DELETE", f"/v1/studies/{study_id}")
        assert status == 200 and answer["status"] == "cancelled"  # again: no change
        status, answer = await service.call("PATCH", f"/v1/studies/{study_id}", {"paused": True})
        assert status == 409


async def read_events(
    session: aiohttp.ClientSession,
    url: str,
    stop: int = 10_000,
    headers: dict[str, str] | None = None,
) -> list[tuple[str, Any]]:
    """(kind, data) of each server-sent event until `end` or `stop` events."""
    events: list[tuple[str, Any]] = []
    async with session.get(url, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        kind = None
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                assert kind is not None
                events.append((kind, orjson.loads(line[len("data: ") :])))
                if kind == "end" or len(events) >= stop:
                    break
            elif line.startswith(":"):
                events.append(("ping", None))
                if len(events) >= stop:
                    break
    return events


async def test_event_stream_yields_events_snapshots_and_end(tmp_path: Path) -> None:
    async with (
        simulator(latency_base_s=0.01) as base_url,
        running_service(tmp_path, ping_s=0.1, sim=base_url) as service,
    ):
        study_id = await service.create(study_config(budget_scoring_calls=150, concurrency=4))
        url = f"{service.url}/v1/studies/{study_id}/events"
        events = await read_events(service.session, url)
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "snapshot" and kinds[-1] == "end"
        assert "candidate_added" in kinds and "pull_done" in kinds and "finished" in kinds
        assert kinds.count("snapshot") >= 3  # periodic, while it ran (1.5 s at 100 calls/s)
        snapshots = [data for kind, data in events if kind == "snapshot"]
        assert all(StudySnapshot.from_json(s).study_id == study_id for s in snapshots)
        assert snapshots[-1]["done"] and snapshots[-1]["status"] == "finished"
        assert events[-1][1] == {"id": study_id, "status": "finished"}
        pull = next(data for kind, data in events if kind == "pull_done")
        assert set(pull) >= {"arm", "example", "reward", "kind"}
        # a stream opened after the end gives the final snapshot and the end at once
        late = await read_events(service.session, url)
        assert [kind for kind, _ in late] == ["snapshot", "end"]
        # a slower pace is asked with ?interval=; a bad one is refused
        status, answer = await service.call("GET", f"/v1/studies/{study_id}/events?interval=0.01")
        assert status == 400 and answer["error"]["field"] == "interval"


async def test_event_stream_pings_while_nothing_happens(tmp_path: Path) -> None:
    async with (
        simulator(latency_base_s=0.02) as base_url,
        running_service(tmp_path, ping_s=0.1, sim=base_url) as service,
    ):
        study_id = await service.create(study_config())
        await service.wait_for(study_id, lambda s: len(s["arms"]) >= 3)
        await service.call("PATCH", f"/v1/studies/{study_id}", {"paused": True})
        await anyio.sleep(0.2)
        url = f"{service.url}/v1/studies/{study_id}/events?interval=60"
        with anyio.fail_after(5):
            got = await read_events(service.session, url, stop=3)
        assert [kind for kind, _ in got] == ["snapshot", "ping", "ping"]  # 0.1 s apart
        assert got[0][1]["status"] == "paused"
        await service.call("DELETE", f"/v1/studies/{study_id}")


async def test_authentication_when_a_token_is_set(tmp_path: Path) -> None:
    async with (
        simulator() as base_url,
        running_service(tmp_path, sim=base_url, token=TOKEN) as service,
    ):
        status, _ = await service.call("GET", "/health")  # open: for liveness probes
        assert status == 200
        for method, path in (
            ("GET", "/v1/studies"),
            ("GET", "/openapi.json"),
            ("POST", "/v1/studies"),
            ("GET", "/v1/studies/x"),
            ("GET", "/v1/studies/x/events"),
        ):
            status, answer = await service.call(method, path)
            assert status == 401, (method, path)
            assert answer["error"]["field"] == "authorization"
            status, answer = await service.call(method, path, token=TOKEN[:-1] + "X")
            assert status == 401 and "wrong token" in answer["error"]["message"]
            assert TOKEN not in orjson.dumps(answer).decode()
        async with service.session.get(service.url + "/v1/studies") as response:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        status, document = await service.call("GET", "/openapi.json", token=TOKEN)
        assert (
            status == 200
            and document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        )
        status, created = await service.call(
            "POST",
            "/v1/studies",
            {"config": study_config(budget_scoring_calls=10)},
            token=TOKEN,
        )
        assert status == 201
        events = await read_events(
            service.session,
            f"{service.url}/v1/studies/{created['id']}/events",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert events[-1][0] == "end"


async def test_patch_stop_search_evaluates_the_leader(tmp_path: Path) -> None:
    async with (
        simulator(latency_base_s=0.02) as base_url,
        running_service(tmp_path, sim=base_url) as service,
    ):
        study_id = await service.create(study_config())
        await service.wait_for(study_id, lambda s: spent(s, "scoring_calls") >= 30)
        status, _ = await service.call("PATCH", f"/v1/studies/{study_id}", {"stop_search": True})
        assert status == 200
        final = await service.wait_for(study_id, lambda s: s["done"])
        assert final["status"] == "finished" and "search stopped" in final["extra"]["reason"]
        records = read_records(service.manager.get(study_id).record.journal)
        assert any(r["kind"] == "evaluation_done" for r in records)


async def test_an_unreachable_endpoint_fails_the_study_at_once_with_the_fix(
    tmp_path: Path,
) -> None:
    async with running_service(tmp_path, sim="http://127.0.0.1:9/v1") as service:
        started = time.monotonic()
        study_id = await service.create(study_config())
        final = await service.wait_for(study_id, lambda s: s["done"])
        assert time.monotonic() - started < 5
        assert final["status"] == "failed"
        assert "cannot connect" in final["message"] and "127.0.0.1:9" in final["message"]
