"""The OpenAI-compatible server: routes, keys, rate limits, latency, faults and counts.

`OpenAIServer` puts a `Backend` behind the OpenAI protocol of `engine.serving.protocol`, on
aiohttp.web: ``async with serve(settings, backend) as server`` gives ``server.base_url``
(``http://127.0.0.1:PORT/v1``) and ``server.stats()``.

Per request, in order: count it; check the API key (401); parse the body (400); check the model
(404); the quota (429 ``insufficient_quota``); the rate limits (429 with ``Retry-After``); draw a
fault (500, 503, hang, reset, malformed body); generate; wait the latency; answer. Every answer
carries the ``x-ratelimit-*`` headers when limits are set. The steps live beside this module:
`keys`, `completions` (the body, its tokens, the answer), `ratelimit`, `faults`, `latency`.
"""

from __future__ import annotations

import contextlib
import math
import socket
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import orjson
from aiohttp import web

from engine.errors import ConfigError
from engine.serving.completions import Api, Call, answer, read_call
from engine.serving.faults import FaultReset, Faults
from engine.serving.keys import AcceptedKeys, request_key
from engine.serving.latency import Latency
from engine.serving.messages import anthropic_error_body
from engine.serving.protocol import ApiError, Backend, error_body, models_response
from engine.serving.quirks import NOT_JSON_PAGE, apply_quirks
from engine.serving.ratelimit import RateLimiter, format_duration
from engine.serving.settings import ServerSettings

__all__ = ["OpenAIServer", "listening", "serve"]

_JSON = "application/json"
_ROUTES: dict[Api, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "messages": "/v1/messages",  # Anthropic's Messages API
}


class _Stats:
    __slots__ = ("by_route", "by_status", "requests", "tokens")

    def __init__(self) -> None:
        self.requests = 0
        self.tokens = 0
        self.by_status: Counter[str] = Counter()
        self.by_route: Counter[str] = Counter()

    def count(self, route: str) -> None:
        self.requests += 1
        self.by_route[route] += 1


_Server = TypeVar("_Server", bound="OpenAIServer")


class OpenAIServer:
    """An OpenAI-compatible server answering with `backend` as `settings` say; start it with
    `serve` (or `listening`, for a subclass)."""

    def __init__(self, settings: ServerSettings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend
        self.limiter = RateLimiter(
            settings.requests_per_minute,
            settings.tokens_per_minute,
            per_key=settings.per_key_limits,
        )
        self.base_url = ""
        self._stats = _Stats()
        self._served = 0
        self._keys = AcceptedKeys(settings.api_keys, settings.kind)
        self._faults = Faults(settings)
        self._latency = Latency(settings)
        self._tokenize = backend.tokenize
        self._runner: web.AppRunner | None = None
        self._created = 1_700_000_000 + settings.seed % 1000

    # -- in-process API -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``{"requests", "by_status", "by_route", "tokens", "faults"}`` so far."""
        stats = self._stats
        return {
            "requests": stats.requests,
            "by_status": dict(stats.by_status),
            "by_route": dict(stats.by_route),
            "tokens": stats.tokens,
            "faults": dict(self._faults.counts),
        }

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        if self.settings.not_json:  # a web server, not an API: a page for every request
            app.router.add_route("*", "/{tail:.*}", self._page)
            return app
        app.router.add_post(_ROUTES["chat"], self._chat)
        app.router.add_post(_ROUTES["completions"], self._completions)
        app.router.add_post(_ROUTES["messages"], self._messages)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model}", self._model)
        app.router.add_routes(self.debug_routes())
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    def debug_routes(self) -> list[web.RouteDef]:
        """Routes served besides the OpenAI ones, before the catch-all 404; a subclass adds
        its own."""
        if self.settings.stats_path is None:
            return []
        return [web.get(self.settings.stats_path, self._stats_route)]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        runner = web.AppRunner(
            self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            sock.close()
            await runner.cleanup()
            raise ConfigError(
                f"{self.settings.kind}: cannot listen on {host}:{port}: {error}"
            ) from None
        site = web.SockSite(runner, sock, backlog=2048)
        await site.start()
        self._runner = runner
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.base_url = f"http://{shown}:{bound}/v1"
        return self.base_url

    async def stop(self) -> None:
        self._faults.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- answers --------------------------------------------------------------------------------

    def _respond(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        self._stats.by_status[str(status)] += 1
        return web.Response(
            body=orjson.dumps(payload), status=status, content_type=_JSON, headers=headers
        )

    def _error(self, error: ApiError, key: str, api: Api = "chat") -> web.Response:
        headers = self.limiter.headers(key)
        headers.update(error.headers)
        body = anthropic_error_body(error) if api == "messages" else error.body()
        return self._respond(error.status, body, headers)

    def _check_model(self, model: str) -> None:
        if model != self.settings.model:
            raise ApiError(
                404,
                f"The model `{model}` does not exist or you do not have access to it. "
                f"This {self.settings.kind} serves `{self.settings.model}`.",
                code="model_not_found",
                param="model",
            )

    def _admit(self, key: str, estimate: int) -> None:
        settings = self.settings
        quota = settings.quota_requests
        if quota is not None and self._served >= quota:
            raise ApiError(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                type="insufficient_quota",
                code="insufficient_quota",
            )
        if not self.limiter.active:
            return
        admission = self.limiter.admit(key, estimate)
        if admission.admitted:
            return
        wait = admission.retry_after_s
        name = admission.bucket
        limit = settings.requests_per_minute if name == "requests" else settings.tokens_per_minute
        unit = "requests per min (RPM)" if name == "requests" else "tokens per min (TPM)"
        requested = 1 if name == "requests" else estimate
        raise ApiError(
            429,
            f"Rate limit reached for {settings.model} ({settings.kind}) on {unit}: Limit "
            f"{int(limit or 0)}, Requested {requested}. Please try again in "
            f"{format_duration(wait)}.",
            type=name,
            code="rate_limit_exceeded",
            headers={
                "Retry-After": str(max(1, math.ceil(wait))),
                "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
            },
        )

    def prefix_cache_stats(self) -> dict[str, int]:
        """Prompt tokens the prefix cache served (`hits`) and did not (`misses`)."""
        cache = self._latency.prefix_cache
        return {"hits": cache.hits, "misses": cache.misses} if cache else {"hits": 0, "misses": 0}

    def _prompt_cost(self, call: Call) -> float:
        """The call's prompt tokens for its latency, through the prefix cache if any."""
        if not self.settings.latency_per_prompt_token_s:
            return 0.0
        return sum(
            self._latency.prompt_cost(self.backend.tokenize(text)) for text in call.prompt_texts()
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "chat")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "completions")

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "messages")

    async def _serve(self, request: web.Request, api: Api) -> web.StreamResponse:
        """Per request, in the order of the module's docstring."""
        self._stats.count(_ROUTES[api])
        api_key = request_key(request)
        key = api_key or ""
        try:
            self._keys.check(api_key)
            call = read_call(api, await request.read(), self._quirks)
            self._check_model(call.model)
            prompt_tokens = call.prompt_tokens(self._count_tokens)
            estimate = call.estimate(prompt_tokens)
            self._admit(key, estimate)
            fault = self._faults.draw()
            if fault is not None:
                await self._faults.act(fault, request)
            payload, completion_tokens = await answer(
                self.backend, call, prompt_tokens, self._count_tokens
            )
            await self._latency.wait(completion_tokens, self._prompt_cost(call))
        except ApiError as error:
            return self._error(error, key, api)
        except FaultReset:
            self._stats.by_status["reset"] += 1
            return web.Response(status=500)
        self._served += 1
        total = prompt_tokens + completion_tokens
        self._stats.tokens += total
        headers: dict[str, str] | None = None
        if self.limiter.active:
            self.limiter.reconcile(key, estimate, total)
            headers = self.limiter.headers(key)
        if fault == "malformed":
            return self._malformed(payload, headers)
        return self._respond(200, payload, headers)

    def _malformed(self, payload: Any, headers: dict[str, str] | None) -> web.Response:
        """A 200 whose JSON body is cut in half (the malformed fault)."""
        body = orjson.dumps(payload)
        self._stats.by_status["200"] += 1
        return web.Response(body=body[: len(body) // 2], content_type=_JSON, headers=headers)

    def _quirks(self, api: Api, body: Any) -> Any:
        settings = self.settings
        return apply_quirks(
            body, choices=settings.choices, reasoning=settings.reasoning, chat=api == "chat"
        )

    async def _page(self, request: web.Request) -> web.StreamResponse:
        self._stats.count(request.path)
        self._stats.by_status["200"] += 1
        return web.Response(body=NOT_JSON_PAGE, content_type="text/html")

    def _count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    # -- other routes ---------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self._stats.count("/v1/models")
        try:
            self._keys.check(request_key(request))
        except ApiError as error:
            return self._error(error, "")
        return self._respond(200, self._models_response())

    def _models_response(self) -> dict[str, Any]:
        return models_response(self.settings.model, self._created, self.settings.owned_by)

    async def _model(self, request: web.Request) -> web.StreamResponse:
        self._stats.count("/v1/models/{model}")
        try:
            self._keys.check(request_key(request))
            self._check_model(request.match_info["model"])
        except ApiError as error:
            return self._error(error, "")
        listed: dict[str, Any] = self._models_response()["data"][0]
        return self._respond(200, listed)

    async def _stats_route(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=orjson.dumps(self.stats()), content_type=_JSON)

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        body = error_body(
            f"Invalid URL ({request.method} {request.path}); this {self.settings.kind} serves "
            f"POST {_ROUTES['chat']}, POST {_ROUTES['completions']} and GET /v1/models",
            type="invalid_request_error",
        )
        return web.Response(body=orjson.dumps(body), status=404, content_type=_JSON)


@contextlib.asynccontextmanager
async def listening(
    server: _Server, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[_Server]:
    """Run `server` on `host`:`port` (0: a free port) for the duration of the block."""
    await server.start(host, port)
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def serve(
    settings: ServerSettings, backend: Backend, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[OpenAIServer]:
    """Serve `backend` on `host`:`port` (0: a free port) for the duration of the block."""
    async with listening(OpenAIServer(settings, backend), host, port) as server:
        yield server
