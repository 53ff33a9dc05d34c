"""A service on a loopback port with a client, and a simulator to point studies at: the service's
operator offers it as the endpoint "sim" (`running_service(..., sim=base_url)`), and
`study_config()` picks that endpoint by name, as every request must."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
from aiohttp import web

from engine.app.launcher import Launcher
from engine.service import StateDir, StudyManager, build_app
from engine.service.operator import Operator
from engine.sim import SimConfig, serve_sim
from engine.sim.server import SimServer


class Service:
    """The running app, its manager and an HTTP client that speaks to it."""

    def __init__(
        self,
        url: str,
        manager: StudyManager,
        session: aiohttp.ClientSession,
        state: StateDir,
        app: web.Application,
    ) -> None:
        self.app = app
        self.url = url
        self.manager = manager
        self.session = session
        self.state = state

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.url + path, data=data, headers=headers
        ) as response:
            text = await response.read()
            return response.status, orjson.loads(text) if text else None

    async def create(self, config: dict[str, Any], **extra: Any) -> str:
        status, body = await self.call("POST", "/v1/studies", {"config": config, **extra})
        assert status == 201, body
        study_id: str = body["id"]
        return study_id

    async def snapshot(self, study_id: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/v1/studies/{study_id}")
        assert status == 200, body
        result: dict[str, Any] = body
        return result

    async def wait_for(
        self,
        study_id: str,
        check: Callable[[dict[str, Any]], bool],
        timeout_s: float = 20.0,
    ) -> dict[str, Any]:
        """Poll the study's snapshot until `check` holds."""
        with anyio.fail_after(timeout_s):
            while True:
                snapshot = await self.snapshot(study_id)
                if check(snapshot):
                    return snapshot
                await anyio.sleep(0.05)


def spent(snapshot: dict[str, Any], name: str) -> float:
    return float(next(row["spent"] for row in snapshot["budgets"] if row["name"] == name))


def calls(snapshot: dict[str, Any]) -> int:
    """Scoring and proposal calls the study has made."""
    spend = snapshot["extra"].get("spend", {})  # none yet while the study starts
    return int(spend.get("scoring_calls", 0)) + int(spend.get("proposal_calls", 0))


def operator_of(sim: str | None, settings: dict[str, Any] | None) -> Operator:
    """The operator's settings: `settings`, with the endpoint "sim" at `sim` when given."""
    data: dict[str, Any] = dict(settings or {})
    endpoints = dict(data.get("endpoints", {}))
    if sim is not None:
        endpoints.setdefault("sim", {"base_url": sim, "models": ["sim-1"]})
    data["endpoints"] = endpoints
    return Operator.decode(data, "test")


@asynccontextmanager
async def running_service(
    state_dir: Path,
    *,
    token: str | None = None,
    max_body: int = 1 << 20,
    ping_s: float = 15.0,
    sim: str | None = None,
    operator: dict[str, Any] | None = None,
) -> AsyncIterator[Service]:
    state = StateDir(state_dir)
    rules = operator_of(sim, operator)
    async with StudyManager(state, Launcher(), say=lambda _: None, operator=rules) as manager:
        app = build_app(manager, token=token, max_body=max_body, ping_s=ping_s)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                yield Service(f"http://127.0.0.1:{port}", manager, session, state, app)
        finally:
            await manager.drain(0.5)
            await runner.cleanup()


@asynccontextmanager
async def simulator_server(**settings: Any) -> AsyncIterator[SimServer]:
    """A simulator serving larger_number on loopback (a simulator, not a real model)."""
    async with serve_sim(SimConfig(tasks=("larger_number",), **settings)) as server:
        yield server


@asynccontextmanager
async def simulator(**settings: Any) -> AsyncIterator[str]:
    """The base URL of `simulator_server`."""
    async with simulator_server(**settings) as server:
        yield str(server.base_url)


def study_config(**changes: Any) -> dict[str, Any]:
    """A study on the endpoint "sim" that runs until stopped (a large budget)."""
    config: dict[str, Any] = {
        "task": "larger_number",
        "endpoint": "sim",
        "no_cache": True,
        "budget_scoring_calls": 100_000,
        "scoring_size": 100,
        "test_size": 20,
        "initial_candidates": 6,
        "candidates_per_call": 3,
        "variant_rounds": 0,
        "policy": "uniform",
        "concurrency": 2,
    }
    config.update(changes)
    return config
