"""A small stand-in of `ape-engine serve` for the `top` tests: the contract's routes (health,
list, get, patch, delete, events) over studies whose snapshots the test controls. PATCH bodies
are validated whole and applied to a `FakeControl`, and every request is logged. Runs in the
test's event loop (`serving`) or on a thread of its own for a subprocess to talk to
(`ServiceThread`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import web

from tests.ui.snapshots import FakeControl, make_snapshot


@dataclass
class FakeService:
    studies: dict[str, FakeControl] = field(default_factory=dict)
    token: str | None = None
    events: bool = True  # False: the events route answers 404 (top must poll)
    break_stream_after: int | None = None  # snapshots sent before the stream is cut
    interval_s: float = 0.05
    log: list[tuple[str, str, Any]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)

    def add(self, study_id: str, **changes: Any) -> FakeControl:
        control = FakeControl(make_snapshot(study_id=study_id, **changes))
        self.studies[study_id] = control
        return control

    def finish(self, study_id: str) -> None:
        control = self.studies[study_id]
        control.current = replace(control.current, status="finished", done=True)

    # -- the app ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/studies", self._list)
        app.router.add_get("/v1/studies/{id}", self._get)
        app.router.add_patch("/v1/studies/{id}", self._patch)
        app.router.add_delete("/v1/studies/{id}", self._delete)
        app.router.add_get("/v1/studies/{id}/events", self._events)
        return app

    @staticmethod
    def _error(status: int, message: str, field_name: str | None = None) -> web.Response:
        body = {"error": {"message": message, "field": field_name}}
        return web.json_response(body, status=status, dumps=lambda o: orjson.dumps(o).decode())

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.log.append((request.method, request.path, request.headers.get("Authorization")))
        wanted = f"Bearer {self.token}"
        if (
            self.token
            and request.path != "/health"
            and request.headers.get("Authorization") != wanted
        ):
            return self._error(401, "missing or wrong bearer token")
        response: web.StreamResponse = await handler(request)
        return response

    def _study(self, request: web.Request) -> FakeControl:
        control = self.studies.get(request.match_info["id"])
        if control is None:
            raise web.HTTPNotFound(
                text=orjson.dumps(
                    {"error": {"message": f"no study {request.match_info['id']}", "field": "id"}}
                ).decode(),
                content_type="application/json",
            )
        return control

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "studies": len(self.studies), "version": "t"})

    async def _list(self, request: web.Request) -> web.Response:
        rows = [
            {
                "id": study_id,
                "task": c.current.task,
                "policy": c.current.policy,
                "status": c.current.status,
                "elapsed_s": c.current.elapsed_s,
                "done": c.current.done,
            }
            for study_id, c in self.studies.items()
        ]
        return web.json_response({"studies": rows})

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response(self._study(request).current.to_json())

    async def _patch(self, request: web.Request) -> web.Response:
        control = self._study(request)
        body = await request.json()
        self.patches.append(body)
        known = {"concurrency", "rate_limits", "budgets", "new_candidate_share", "paused", "drop"}
        for key in body:
            if key not in known:
                return self._error(400, f"unknown field {key!r}", key)
        if "concurrency" in body and not (
            isinstance(body["concurrency"], int) and body["concurrency"] >= 1
        ):
            return self._error(400, "concurrency: must be an integer >= 1", "concurrency")
        if "concurrency" in body:
            control.set_concurrency(body["concurrency"])
        if "rate_limits" in body:
            limits = body["rate_limits"]
            control.set_rate_limits(
                requests_per_minute=limits.get("requests_per_minute"),
                tokens_per_minute=limits.get("tokens_per_minute"),
                endpoint=limits.get("endpoint"),
            )
        for name, limit in body.get("budgets", {}).items():
            control.set_budget(name, limit)
        if "new_candidate_share" in body:
            control.set_new_candidate_share(body["new_candidate_share"])
        if body.get("paused") is True:
            control.pause()
        elif body.get("paused") is False:
            control.resume()
        for arm in body.get("drop", []):
            control.drop_arm(arm)
        return web.json_response(control.current.to_json())

    async def _delete(self, request: web.Request) -> web.Response:
        control = self._study(request)
        control.cancel()
        return web.json_response({"id": request.match_info["id"], "status": "cancelled"})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        control = self._study(request)
        if not self.events:
            return self._error(404, "no event stream here")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):  # the client went away
            await self._stream(control, response)
        return response

    async def _stream(self, control: FakeControl, response: web.StreamResponse) -> None:
        await response.write(b": ping\n\n")
        sent = 0
        while True:
            snapshot = control.current
            payload = orjson.dumps(snapshot.to_json())
            # split the data in two writes to exercise the client's chunk reassembly
            frame = b"event: snapshot\ndata: " + payload + b"\n\n"
            await response.write(frame[: len(frame) // 2])
            await response.write(frame[len(frame) // 2 :])
            await response.write(b'event: pull_done\ndata: {"arm": 1}\n\n')
            sent += 1
            if snapshot.done:
                await response.write(b'event: end\ndata: {"status": "finished"}\n\n')
                break
            if self.break_stream_after is not None and sent >= self.break_stream_after:
                break
            await asyncio.sleep(self.interval_s)


@asynccontextmanager
async def serving(service: FakeService) -> AsyncIterator[str]:
    """Serve on a free loopback port in the running event loop; yields the base URL."""
    runner = web.AppRunner(service.app(), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class ServiceThread:
    """The fake service on a thread with its own event loop (for a subprocess to attach to)."""

    def __init__(self, service: FakeService) -> None:
        self.service = service
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serving(self.service) as url:
            self.url = url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ServiceThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake service did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
