"""A study in an `ape-engine serve` process, seen over its HTTP API (the team's API contract).

`ServiceClient` wraps the routes `top` needs: health, list, get, patch, delete, and the
server-sent-event stream (`event: snapshot` frames, parsed here without a line-length limit).
`HttpControl` is a `StudyControl` over PATCH: its setters queue request bodies that one sender
task sends in order (so two quick keys arrive in the order pressed), and apply the change to
the snapshot it shows at once, so the next key steps from the new value before the service
answers. An error the service sends (a 4xx with `{"error": {"message", "field"}}`) is reported
through a callback and changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import aiohttp
import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from engine.errors import ConfigError, EngineError
from engine.nesting import json_depth_problem
from engine.study.snapshot import StudySnapshot

__all__ = ["HttpControl", "ServiceClient", "ServiceError", "normalise_url", "sse_events"]

_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10.0)
_STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=30.0)


class ServiceError(EngineError):
    """The service could not be reached or answered with an error."""

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.field = field


def normalise_url(url: str) -> str:
    """`host:port` or `http://host:port/` -> `http://host:port` (no trailing slash)."""
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    return url.rstrip("/")


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a `text/event-stream` body given in chunks of any size; comments
    (`: ping`) are skipped, multi-line data joined with newlines (WHATWG server-sent events)."""
    buffer = b""
    event = ""
    data: list[str] = []
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if data:
                    yield event or "message", "\n".join(data)
                event, data = "", []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)


class ServiceClient:
    """The API of one service. Use `async with ServiceClient(url, token=...) as client:`."""

    def __init__(self, url: str, *, token: str | None = None) -> None:
        self.url = normalise_url(url)
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_env(cls, url: str, token_env: str | None) -> ServiceClient:
        token = os.environ.get(token_env) if token_env else None
        return cls(url, token=token or None)

    async def __aenter__(self) -> ServiceClient:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=_REQUEST_TIMEOUT)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use ServiceClient as `async with`")
        return self._session

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON call; a 4xx/5xx or an unreachable service raises `ServiceError`."""
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self.session.request(
                method, f"{self.url}{path}", data=data, headers=headers
            ) as response:
                payload = await response.read()
                status = response.status
        except aiohttp.ClientConnectorError as error:  # nothing listens there
            raise ServiceError(
                f"no service answers at {self.url} ({error.strerror or error}): start one with "
                "`ape-engine serve` (in another terminal), or give the address of the one "
                "running: ape-engine top URL"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ServiceError(
                f"{method} {self.url}{path}: {error or type(error).__name__}"
            ) from None
        try:
            deep = json_depth_problem(payload) if payload else None
            decoded = orjson.loads(payload) if payload and deep is None else None
        except orjson.JSONDecodeError:
            decoded = None
        if status >= 400:
            detail = decoded.get("error") if isinstance(decoded, dict) else None
            message = detail.get("message") if isinstance(detail, dict) else None
            field = detail.get("field") if isinstance(detail, dict) else None
            text = message or payload[:200].decode("utf-8", errors="replace") or "no message"
            raise ServiceError(f"{method} {path}: {status} {text}", status=status, field=field)
        if decoded is None and payload:
            raise ServiceError(f"{method} {path}: the answer is not JSON: {payload[:100]!r}")
        return decoded

    async def health(self) -> dict[str, Any]:
        answer = await self.request("GET", "/health")
        return answer if isinstance(answer, dict) else {}

    async def studies(self) -> list[dict[str, Any]]:
        answer = await self.request("GET", "/v1/studies")
        studies = answer.get("studies") if isinstance(answer, dict) else None
        if not isinstance(studies, list):
            raise ServiceError("GET /v1/studies: the answer has no list 'studies'")
        return [study for study in studies if isinstance(study, dict)]

    async def snapshot(self, study_id: str) -> StudySnapshot:
        return StudySnapshot.from_json(await self.request("GET", f"/v1/studies/{study_id}"))

    async def patch(self, study_id: str, body: dict[str, Any]) -> StudySnapshot:
        return StudySnapshot.from_json(await self.request("PATCH", f"/v1/studies/{study_id}", body))

    async def cancel(self, study_id: str) -> Any:
        return await self.request("DELETE", f"/v1/studies/{study_id}")

    async def events(self, study_id: str) -> AsyncIterator[tuple[str, str]]:
        """The study's server-sent events as (event, data); ends when the stream does. Raises
        `ServiceError` when the stream cannot be opened (the caller falls back to polling)."""
        path = f"/v1/studies/{study_id}/events"
        try:
            async with self.session.get(
                f"{self.url}{path}",
                headers={"Accept": "text/event-stream"},
                timeout=_STREAM_TIMEOUT,
            ) as response:
                kind = response.headers.get("Content-Type", "")
                if response.status != 200 or not kind.startswith("text/event-stream"):
                    raise ServiceError(
                        f"GET {path}: {response.status} {kind or 'no content type'}, not an "
                        "event stream",
                        status=response.status,
                    )
                async for event in sse_events(response.content.iter_any()):
                    yield event
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ServiceError(f"GET {path}: {error or type(error).__name__}") from None


_DELETE = "__delete__"


class HttpControl:
    """`StudyControl` of a study in a service: each change is a PATCH (cancel a DELETE)."""

    def __init__(
        self,
        client: ServiceClient,
        study_id: str,
        snapshot: StudySnapshot,
        *,
        on_error: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.client = client
        self.study_id = study_id
        self.on_error = on_error
        self._latest = snapshot
        self._pending = 0
        self.sent: list[dict[str, Any]] = []
        send: MemoryObjectSendStream[dict[str, Any]]
        receive: MemoryObjectReceiveStream[dict[str, Any]]
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](64)
        self._send, self._receive = send, receive

    # -- snapshots in ---------------------------------------------------------------------------

    def snapshot(self) -> StudySnapshot:
        return self._latest

    def receive(self, snapshot: StudySnapshot) -> None:
        """A snapshot from the stream or a poll. While changes are on their way it is older
        than they are, so it is kept only once they have been answered."""
        if self._pending == 0:
            self._latest = snapshot

    # -- StudyControl ---------------------------------------------------------------------------

    def set_concurrency(self, concurrency: int) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency: must be an integer >= 1 (got {concurrency!r})")
        self._queue({"concurrency": concurrency})
        throughput = dataclasses.replace(self._latest.throughput, concurrency=concurrency)
        self._latest = dataclasses.replace(self._latest, throughput=throughput)

    def set_rate_limits(
        self,
        *,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        endpoint: str | None = None,
    ) -> None:
        limits: dict[str, Any] = {
            "requests_per_minute": requests_per_minute,
            "tokens_per_minute": tokens_per_minute,
        }
        if endpoint is not None:
            limits["endpoint"] = endpoint
        self._queue({"rate_limits": limits})
        limiters = tuple(
            dataclasses.replace(
                row, requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute
            )
            if endpoint is None or row.endpoint == endpoint
            else row
            for row in self._latest.limiters
        )
        self._latest = dataclasses.replace(self._latest, limiters=limiters)

    def set_budget(self, name: str, limit: float | None) -> None:
        value: float | int | None = limit
        if limit is not None and name != "usd" and float(limit).is_integer():
            value = int(limit)  # counts go as integers, as the contract says
        self._queue({"budgets": {name: value}})
        budgets = tuple(
            dataclasses.replace(row, limit=limit) if row.name == name else row
            for row in self._latest.budgets
        )
        self._latest = dataclasses.replace(self._latest, budgets=budgets)

    def set_new_candidate_share(self, share: float) -> None:
        self._queue({"new_candidate_share": share})
        proposals = dataclasses.replace(self._latest.proposals, new_candidate_share=share)
        self._latest = dataclasses.replace(self._latest, proposals=proposals)

    def pause(self) -> None:
        self._queue({"paused": True})
        self._latest = dataclasses.replace(self._latest, status="paused")

    def resume(self) -> None:
        self._queue({"paused": False})
        self._latest = dataclasses.replace(self._latest, status="running")

    def drop_arm(self, arm: int) -> None:
        self._queue({"drop": [arm]})
        arms = tuple(
            dataclasses.replace(row, state="dropped") if row.arm == arm else row
            for row in self._latest.arms
        )
        self._latest = dataclasses.replace(self._latest, arms=arms)

    def cancel(self, reason: str = "cancelled by the user") -> None:
        self._queue({_DELETE: True})  # the service records its own reason

    def stop_search(self, reason: str = "search stopped by the user") -> None:
        self._queue({"stop_search": True})
        self._latest = dataclasses.replace(self._latest, status="stopping")

    @property
    def pending(self) -> int:
        """Changes queued or on their way, not answered yet."""
        return self._pending

    async def flush(self, timeout_s: float = 3.0) -> None:
        """Wait (up to `timeout_s`) until every queued change has been answered."""
        with anyio.move_on_after(timeout_s):
            while True:
                if self._pending == 0:
                    return
                await anyio.sleep(0.02)

    # -- sending --------------------------------------------------------------------------------

    def _queue(self, body: dict[str, Any]) -> None:
        try:
            self._send.send_nowait(body)
        except anyio.WouldBlock:
            raise ConfigError(
                "too many changes waiting for the service; wait for it to answer"
            ) from None
        self._pending += 1

    async def run(self) -> None:
        """Send the queued changes one after the other (run it in the UI's task group)."""
        async with self._receive:
            async for body in self._receive:
                try:
                    if _DELETE in body:
                        await self.client.cancel(self.study_id)
                        snapshot = await self.client.snapshot(self.study_id)
                    else:
                        snapshot = await self.client.patch(self.study_id, body)
                    self.sent.append(body)
                except EngineError as error:
                    self._pending -= 1
                    self.on_error(str(error))
                    if self._pending == 0:  # undo the optimistic change: ask for the truth
                        with contextlib.suppress(EngineError):
                            self._latest = await self.client.snapshot(self.study_id)
                    continue
                self._pending -= 1
                if self._pending == 0:
                    self._latest = snapshot
