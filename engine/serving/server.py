"""The OpenAI-compatible server: routes, keys, rate limits, latency, faults and counts.

`OpenAIServer` puts a `Backend` behind the OpenAI protocol of `engine.serving.protocol`, on
aiohttp.web: ``async with serve(settings, backend) as server`` gives ``server.base_url``
(``http://127.0.0.1:PORT/v1``) and ``server.stats()``.

Per request, in order: count it; check the API key (401); parse the body (400); check the model
(404); the quota (429 ``insufficient_quota``); the rate limits (429 with ``Retry-After``); draw a
fault (500, 503, hang, reset, malformed body); generate; wait the latency; answer. Every answer
carries the ``x-ratelimit-*`` headers when limits are set.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import orjson
from aiohttp import web

from engine.errors import ConfigError
from engine.serving.protocol import (
    ApiError,
    Backend,
    Scored,
    chat_prompt_tokens,
    chat_response,
    completion_logprobs,
    completions_response,
    error_body,
    models_response,
    parse_chat,
    parse_completions,
)
from engine.serving.ratelimit import RateLimiter, format_duration
from engine.serving.settings import ServerSettings

__all__ = ["OpenAIServer", "listening", "serve"]

_JSON = "application/json"
_ROUTE_CHAT = "/v1/chat/completions"
_ROUTE_COMPLETIONS = "/v1/completions"


class _Stats:
    __slots__ = ("by_route", "by_status", "faults", "requests", "tokens")

    def __init__(self) -> None:
        self.requests = 0
        self.tokens = 0
        self.by_status: Counter[str] = Counter()
        self.by_route: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "by_route": dict(self.by_route),
            "tokens": self.tokens,
            "faults": dict(self.faults),
        }


class _Reset(Exception):
    """The connection was aborted on purpose (a reset fault)."""


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
        self._faults = random.Random(f"faults:{settings.seed}")
        self._fault_rates = tuple((k, r) for k, r in settings.fault_rates() if r > 0)
        self._latency = random.Random(f"latency:{settings.seed}")
        self._keys = frozenset(settings.api_keys)
        self._count = backend.tokenize
        self._closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._created = 1_700_000_000 + settings.seed % 1000

    # -- in-process API -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``{"requests", "by_status", "by_route", "tokens", "faults"}`` so far."""
        return self._stats.as_dict()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(_ROUTE_CHAT, self._chat)
        app.router.add_post(_ROUTE_COMPLETIONS, self._completions)
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
        self._closing = asyncio.Event()
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
        if self._closing is not None:
            self._closing.set()
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

    def _error(self, error: ApiError, key: str) -> web.Response:
        headers = self.limiter.headers(key)
        headers.update(error.headers)
        return self._respond(error.status, error.body(), headers)

    @staticmethod
    def _api_key(request: web.Request) -> str | None:
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
        return request.headers.get("api-key")

    def _check_key(self, key: str | None) -> None:
        if not self._keys:
            return
        if key is None:
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="missing_api_key",
            )
        if key not in self._keys:
            raise ApiError(
                401,
                f"Incorrect API key provided. This {self.settings.kind} accepts only the keys it was "
                "started with (--require-key / --api-key-env).",
                code="invalid_api_key",
            )

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

    def _draw_fault(self) -> str | None:
        if not self._fault_rates:
            return None
        roll = self._faults.random()
        for kind, rate in self._fault_rates:
            if roll < rate:
                return kind
            roll -= rate
        return None

    async def _fault(self, kind: str, request: web.Request) -> None:
        """Act out a fault: raise the error answer, hang, or abort the connection."""
        self._stats.faults[kind] += 1
        if kind == "500":
            raise ApiError(
                500,
                "The server had an error while processing your request (simulated fault).",
                type="server_error",
            )
        if kind == "503":
            raise ApiError(
                503,
                "The server is overloaded or not ready yet (simulated fault).",
                type="server_error",
                code="overloaded",
            )
        if kind == "hang":
            # Until the client gives up (the handler is cancelled), the server stops, or hang_s.
            assert self._closing is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.settings.hang_s)
        if kind == "reset" or (self._closing is not None and self._closing.is_set()):
            self._stats.by_status["reset"] += 1
            if request.transport is not None:
                request.transport.abort()
            raise _Reset

    async def _sleep_latency(self, tokens: int) -> None:
        settings = self.settings
        delay = settings.latency_base_s + settings.latency_per_token_s * tokens
        if delay <= 0:
            return
        if settings.latency_jitter > 0:
            delay *= self._latency.lognormvariate(0.0, settings.latency_jitter)
        await asyncio.sleep(delay)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _ROUTE_CHAT)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _ROUTE_COMPLETIONS)

    async def _serve(self, request: web.Request, route: str) -> web.StreamResponse:
        stats = self._stats
        stats.requests += 1
        stats.by_route[route] += 1
        api_key = self._api_key(request)
        key = api_key or ""
        try:
            self._check_key(api_key)
            raw = await request.read()
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise ApiError(
                    400,
                    "We could not parse the JSON body of your request. The body must be a JSON "
                    "object with the fields of the OpenAI API.",
                ) from None
            if route == _ROUTE_CHAT:
                chat = parse_chat(body)
                self._check_model(chat.model)
                prompt_tokens = chat_prompt_tokens(chat, self._count_tokens)
                estimate = prompt_tokens + chat.n * min(chat.max_tokens, 256)
            else:
                parsed = parse_completions(body)
                self._check_model(parsed.requests[0].model)
                prompt_tokens = sum(self._count_tokens(r.prompt) for r in parsed.requests)
                estimate = prompt_tokens + sum(r.n * r.max_tokens for r in parsed.requests)
            self._admit(key, estimate)
            fault = self._draw_fault()
            if fault is not None:
                await self._fault(fault, request)
            if route == _ROUTE_CHAT:
                payload, completion_tokens = await self._chat_payload(chat, prompt_tokens)
            else:
                payload, completion_tokens = await self._completions_payload(parsed, prompt_tokens)
            await self._sleep_latency(completion_tokens)
        except ApiError as error:
            return self._error(error, key)
        except _Reset:
            return web.Response(status=500)
        self._served += 1
        total = prompt_tokens + completion_tokens
        stats.tokens += total
        if self.limiter.active:
            self.limiter.reconcile(key, estimate, total)
            headers: dict[str, str] | None = self.limiter.headers(key)
        else:
            headers = None
        if fault == "malformed":
            body_bytes = orjson.dumps(payload)
            stats.by_status["200"] += 1
            return web.Response(
                body=body_bytes[: len(body_bytes) // 2], content_type=_JSON, headers=headers
            )
        return self._respond(200, payload, headers)

    def _count_tokens(self, text: str) -> int:
        return len(self._count(text))

    async def _chat_payload(self, chat: Any, prompt_tokens: int) -> tuple[dict[str, Any], int]:
        generations = await self.backend.generate(chat)
        completion_tokens = sum(self._count_tokens(g.text) for g in generations)
        payload = chat_response(
            chat.model, generations, prompt_tokens, completion_tokens, chat.logprobs is not None
        )
        return payload, completion_tokens

    async def _completions_payload(
        self, parsed: Any, prompt_tokens: int
    ) -> tuple[dict[str, Any], int]:
        choices: list[dict[str, Any]] = []
        completion_tokens = 0
        for request in parsed.requests:
            generations = await self.backend.generate(request)
            prefix: Sequence[Scored] = ()
            if parsed.echo and request.logprobs is not None:
                prefix = await self.backend.prompt_logprobs(request.prompt, request.logprobs)
            for generation in generations:
                completion_tokens += self._count_tokens(generation.text)
                logprobs = None
                if request.logprobs is not None:
                    logprobs = completion_logprobs(
                        prefix,
                        generation,
                        request.logprobs,
                        start_offset=0 if parsed.echo else len(request.prompt),
                    )
                choices.append(
                    {
                        "text": (request.prompt if parsed.echo else "") + generation.text,
                        "index": len(choices),
                        "logprobs": logprobs,
                        "finish_reason": generation.finish_reason,
                    }
                )
        model = parsed.requests[0].model
        return completions_response(model, choices, prompt_tokens, completion_tokens), (
            completion_tokens
        )

    # -- other routes ---------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self._stats.requests += 1
        self._stats.by_route["/v1/models"] += 1
        try:
            self._check_key(self._api_key(request))
        except ApiError as error:
            return self._error(error, "")
        return self._respond(200, self._models_response())

    def _models_response(self) -> dict[str, Any]:
        return models_response(self.settings.model, self._created, self.settings.owned_by)

    async def _model(self, request: web.Request) -> web.StreamResponse:
        self._stats.requests += 1
        self._stats.by_route["/v1/models/{model}"] += 1
        try:
            self._check_key(self._api_key(request))
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
            f"POST {_ROUTE_CHAT}, POST {_ROUTE_COMPLETIONS} and GET /v1/models",
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
