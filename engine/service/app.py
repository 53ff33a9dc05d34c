"""The service's HTTP JSON API (aiohttp.web) over a `StudyManager`.

Routes (the contract with `ape-engine top`; docs/service.md has bodies and examples):
``GET /health``, ``GET /openapi.json``, ``POST /v1/studies``, ``GET /v1/studies``,
``GET|PATCH|DELETE /v1/studies/{id}``, ``POST /v1/studies/{id}/resume`` (a quarantined study),
``GET /v1/studies/{id}/events`` (server-sent events),
``GET /v1/studies/{id}/answers`` (the answers scored, paged).
Every error is ``{"error": {"message", "field"}}`` with a 4xx/5xx status (a 405 with its
``Allow`` header). Every request must name this service in ``Host``, come from no other web
origin, and send a POST or PATCH body as JSON (`engine.service.browser`). With a token, every
route but /health needs ``Authorization: Bearer <token>``, compared in constant time
(`hmac.compare_digest`); the token is never logged or echoed. Bodies above `max_body` bytes are
refused with 413 before they are read whole, and one not received whole within
`body_timeout_s` with 408 (the head's timeout is the server's: `engine.service.process`). Reference: WHATWG HTML, "Server-sent events"
(the ``text/event-stream`` format).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import msgspec
import orjson
from aiohttp import web

from engine import __version__
from engine.service.answers import AnswerBook, parse_answers_query
from engine.service.browser import HostPolicy, browser_guard, json_bodies
from engine.service.manager import StudyEntry, StudyManager
from engine.service.openapi import openapi_document
from engine.service.requests import RequestError, parse_create, parse_patch
from engine.study.events import Event
from engine.study.observers import Subscription

__all__ = ["ANSWERS", "DEFAULT_BODY_TIMEOUT_S", "DEFAULT_MAX_BODY", "MANAGER", "build_app"]

logger = logging.getLogger("engine.service")

DEFAULT_MAX_BODY = 1 << 20
#: a body not received whole within this many seconds is refused with 408
DEFAULT_BODY_TIMEOUT_S = 30.0
SNAPSHOT_INTERVAL_S = 0.25
PING_INTERVAL_S = 15.0
MANAGER = web.AppKey("manager", StudyManager)
ANSWERS = web.AppKey("answers", AnswerBook)
_OPTIONS = web.AppKey("options", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        content_type="application/json",
    )


def error_response(message: str, field: str | None, status: int) -> web.Response:
    response = _json({"error": {"message": message, "field": field}}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="ape-engine"'
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as the contract's JSON error."""
    try:
        return await handler(request)
    except RequestError as error:
        response = error_response(str(error), error.field, error.status)
        if error.status == 408:  # sent now, then the connection ends: no wait for the rest
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()
        return response
    except web.HTTPRequestEntityTooLarge as error:
        limit = request.app[_OPTIONS]["max_body"]
        return error_response(f"body: larger than the limit of {limit} bytes", "body", error.status)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message = f"{error.reason}: {request.method} {request.path}"
        if error.status == 404:
            message = f"no route {request.method} {request.path}; see GET /openapi.json"
        response = error_response(message, None, error.status)
        if "Allow" in error.headers:  # a 405 says which methods the route takes
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except Exception as error:
        logger.exception("%s %s failed", request.method, request.path)
        return error_response(f"internal error: {type(error).__name__}: {error}", None, 500)


def _auth(token: str | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    expected = token.encode() if token is not None else None

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None or request.path == "/health":
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise RequestError(
                "authorization: this service needs 'Authorization: Bearer <token>'",
                "authorization",
                status=401,
            )
        if not hmac.compare_digest(given.strip().encode(), expected):
            raise RequestError("authorization: wrong token", "authorization", status=401)
        return await handler(request)

    return check


async def _body(request: web.Request) -> bytes:
    """The body's bytes, for a typed decoder (engine.service.requests)."""
    if not request.can_read_body:
        raise RequestError("body: expected a JSON object", "body")
    timeout_s = request.app[_OPTIONS]["body_timeout_s"]
    with anyio.move_on_after(timeout_s):
        return await request.read()  # raises 413 past client_max_size
    raise RequestError(f"body: not received whole within {timeout_s:g} s", "body", status=408)


def _entry(request: web.Request) -> StudyEntry:
    return request.app[MANAGER].get(request.match_info["id"])


# -- routes -------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    return _json(
        {
            "status": "ok",
            "studies": len(manager.entries),
            "version": __version__,
            "running": manager.running(),
            "draining": manager.closing,
        }
    )


async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document(request.app[_OPTIONS]["auth"]))


async def create_study(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    if manager.closing:
        raise RequestError("the service is shutting down; it takes no new study", status=503)
    settings, task = parse_create(await _body(request))
    entry = await manager.create(settings, task)
    warnings = list(entry.prepared.task_warnings) if entry.prepared is not None else []
    return _json(
        {
            "id": entry.id,
            "status": entry.snapshot().status,
            "journal": entry.record.journal,
            "warnings": warnings,
        },
        201,
    )


async def list_studies(request: web.Request) -> web.Response:
    entries = request.app[MANAGER].entries.values()
    return _json({"studies": [entry.summary() for entry in entries]})


async def inspect_study(request: web.Request) -> web.Response:
    return _json(_entry(request).snapshot().to_json())


async def patch_study(request: web.Request) -> web.Response:
    entry = _entry(request)
    patch = parse_patch(await _body(request))
    snapshot = await request.app[MANAGER].patch(entry, patch)
    return _json(snapshot.to_json())


async def cancel_study(request: web.Request) -> web.Response:
    entry = _entry(request)
    snapshot = await request.app[MANAGER].cancel(entry)
    return _json({"id": entry.id, "status": snapshot.status})


async def resume_study(request: web.Request) -> web.Response:
    """Run again a study the service does not run (quarantined: the service died twice
    running it)."""
    entry = await request.app[MANAGER].resume(_entry(request))
    return _json(
        {"id": entry.id, "status": entry.snapshot().status, "journal": entry.record.journal}
    )


async def study_answers(request: web.Request) -> web.Response:
    """The study's answers, a page at a time (`engine.service.answers`)."""
    entry = _entry(request)
    query = parse_answers_query(request.query, [name for name, _ in request.query.items()])
    page = await request.app[ANSWERS].page(
        entry.id, entry.record.journal, query, ended=entry.done.is_set()
    )
    return _json(page)


def _sse(kind: str, data: Any) -> bytes:
    payload = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
    return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


def _event_json(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(event)  # with its "kind"
    return data


def _snapshot_interval(request: web.Request) -> float:
    """``?interval=S``: seconds between snapshots, checked (0.25 s when not given)."""
    if "interval" not in request.query:
        return SNAPSHOT_INTERVAL_S
    try:
        interval = float(request.query["interval"])
    except ValueError:
        interval = -1.0
    if not SNAPSHOT_INTERVAL_S <= interval <= 3600:
        raise RequestError(
            f"interval: seconds between snapshots, from {SNAPSHOT_INTERVAL_S} to 3600",
            "interval",
        )
    return interval


async def _stream_until_finished(
    response: web.StreamResponse,
    entry: StudyEntry,
    subscription: Subscription,
    interval: float,
    ping_s: float,
) -> None:
    """Write a snapshot, then each event as it comes, a snapshot every `interval` and ``: ping``
    after `ping_s` of silence, until the study finishes."""
    finished = entry.done.is_set()
    if not finished:
        await response.write(_sse("snapshot", entry.snapshot().to_json()))
    clock = anyio.current_time
    next_snapshot = clock() + interval
    last_write = clock()
    while not finished:
        wait = max(0.0, min(next_snapshot, last_write + ping_s) - clock())
        event: Event | None = None
        with anyio.move_on_after(wait):
            try:
                event = await subscription.receive.receive()
            except anyio.EndOfStream:
                finished = True
        if event is not None:
            await response.write(_sse(event.kind, _event_json(event)))
            last_write = clock()
            finished = event.kind == "finished"
        now = clock()
        if now >= next_snapshot and not finished:
            await response.write(_sse("snapshot", entry.snapshot().to_json()))
            next_snapshot = now + interval
            last_write = now
        elif now - last_write >= ping_s:
            await response.write(b": ping\n\n")
            last_write = now
        finished = finished or entry.done.is_set()


async def study_events(request: web.Request) -> web.StreamResponse:
    """The study's events as they happen, a snapshot at most every 0.25 s (``?interval=S``
    for a slower pace), ``: ping`` after 15 s of silence, and ``event: end`` at the end."""
    entry = _entry(request)
    interval = _snapshot_interval(request)
    ping_s = request.app[_OPTIONS]["ping_s"]
    subscription = entry.bus.subscribe(buffer=4096)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await _stream_until_finished(response, entry, subscription, interval, ping_s)
        await entry.done.wait()
        snapshot = entry.snapshot()
        await response.write(_sse("snapshot", snapshot.to_json()))
        await response.write(_sse("end", {"id": entry.id, "status": snapshot.status}))
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away
    finally:
        entry.bus.unsubscribe(subscription)
    return response


def build_app(
    manager: StudyManager,
    *,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    ping_s: float = PING_INTERVAL_S,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    hosts: HostPolicy | None = None,
) -> web.Application:
    """The aiohttp application; `token` None turns authentication off; `hosts` are the names
    ``Host`` may give (the loopback names by default)."""
    middlewares = [_errors, browser_guard(hosts or HostPolicy()), _auth(token), json_bodies]
    app = web.Application(middlewares=middlewares, client_max_size=max_body)
    app[MANAGER] = manager
    app[ANSWERS] = AnswerBook(manager.launcher.read_record)
    app[_OPTIONS] = {
        "auth": token is not None,
        "ping_s": ping_s,
        "max_body": max_body,
        "body_timeout_s": body_timeout_s,
    }
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_post("/v1/studies", create_study)
    app.router.add_get("/v1/studies", list_studies)
    app.router.add_get("/v1/studies/{id}", inspect_study)
    app.router.add_patch("/v1/studies/{id}", patch_study)
    app.router.add_delete("/v1/studies/{id}", cancel_study)
    app.router.add_post("/v1/studies/{id}/resume", resume_study)
    app.router.add_get("/v1/studies/{id}/events", study_events)
    app.router.add_get("/v1/studies/{id}/answers", study_answers)
    return app
