"""The async client of one OpenAI-compatible endpoint: chat, completions, continuation log-prob.

Every call goes limiter -> transport -> classification, inside the one retry layer
(`engine.llm.retry`). Bodies are encoded once with orjson and parsed into small frozen results
(`engine.llm.results`); nothing of the raw response outlives the call, so an in-flight call costs
a coroutine and a few hundred bytes. Reference: OpenAI API reference, "Chat Completions" and the
legacy "Completions" (``echo``, ``logprobs``: ``tokens``, ``token_logprobs``, ``text_offset``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import orjson

from engine.errors import EndpointError
from engine.llm.capabilities import Capabilities, Capability, probe_capabilities, require_capability
from engine.llm.clock import Clock
from engine.llm.endpoint import EndpointConfig, Secret, load_api_key
from engine.llm.errors import (
    LLMError,
    MalformedResponseError,
    QuotaExceededError,
    RateLimitError,
    classify_response,
    redact,
)
from engine.llm.gate import SEND_GATE
from engine.llm.headers import parse_rate_limit_headers
from engine.llm.lean import LeanTransport
from engine.llm.limiter import UNSET, RateLimiter, _Unset
from engine.llm.results import Completion, ContinuationLogprob, TokenLogprobs, Usage
from engine.llm.retry import call_with_retries
from engine.llm.stats import CallStats, StatsSnapshot
from engine.llm.transport import AiohttpTransport, Transport

__all__ = ["LLMClient", "estimate_tokens"]

T = TypeVar("T")
_Parsed = tuple[
    tuple[str, ...], tuple[str | None, ...], tuple[TokenLogprobs | None, ...], Usage | None
]


def _encode(payload: dict[str, Any]) -> bytes:
    # orjson hands back a 4 KiB allocation whatever the length: keep an exact-size copy
    return bytes(memoryview(orjson.dumps(payload)))


def estimate_tokens(text: str) -> int:
    """A cheap upper-leaning guess of the tokens in `text` (about 4 characters per token for
    English with BPE tokenizers); the limiter reconciles it with the reported usage."""
    return len(text) // 4 + 1


def _usage(data: Mapping[str, Any]) -> Usage | None:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    total = int(usage.get("total_tokens") or prompt + completion)
    return Usage(prompt, completion, total)


def _choices(data: Any) -> list[Any]:
    choices = data["choices"]
    if not isinstance(choices, list) or not choices:
        raise ValueError("no choices")
    if len(choices) > 1:
        choices = sorted(choices, key=lambda choice: int(choice.get("index", 0)))
    return choices


def _parse_chat(data: Any) -> _Parsed:
    texts: list[str] = []
    reasons: list[str | None] = []
    logprobs: list[TokenLogprobs | None] = []
    for choice in _choices(data):
        message = choice["message"]
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError("message content is not text")
        texts.append(content or "")
        reasons.append(choice.get("finish_reason"))
        block = choice.get("logprobs")
        if isinstance(block, dict) and isinstance(block.get("content"), list):
            items = block["content"]
            logprobs.append(
                TokenLogprobs(
                    tuple(str(item["token"]) for item in items),
                    tuple(float(item["logprob"]) for item in items),
                )
            )
        else:
            logprobs.append(None)
    return tuple(texts), tuple(reasons), tuple(logprobs), _usage(data)


def _completion_logprobs(block: Any) -> TokenLogprobs | None:
    if not isinstance(block, dict) or not isinstance(block.get("tokens"), list):
        return None
    tokens = tuple(str(token) for token in block["tokens"])
    values = tuple(None if v is None else float(v) for v in block.get("token_logprobs") or ())
    offsets = tuple(int(v) for v in block.get("text_offset") or ())
    if len(values) != len(tokens) or (offsets and len(offsets) != len(tokens)):
        raise ValueError("logprobs arrays of different lengths")
    return TokenLogprobs(tokens, values, offsets)


def _parse_completion(data: Any) -> _Parsed:
    texts: list[str] = []
    reasons: list[str | None] = []
    logprobs: list[TokenLogprobs | None] = []
    for choice in _choices(data):
        text = choice["text"]
        if not isinstance(text, str):
            raise ValueError("choice text is not text")
        texts.append(text)
        reasons.append(choice.get("finish_reason"))
        logprobs.append(_completion_logprobs(choice.get("logprobs")))
    return tuple(texts), tuple(reasons), tuple(logprobs), _usage(data)


def continuation_slice(logprobs: TokenLogprobs, prompt_chars: int, text_chars: int) -> range:
    """Indices of the tokens that make up text[prompt_chars:text_chars], chosen by
    `text_offset`; a token straddling the boundary belongs to the continuation."""
    offsets = logprobs.text_offset
    start = len(offsets)
    for index, offset in enumerate(offsets):
        if offset >= prompt_chars:
            start = index
            break
    if start > 0 and offsets[start - 1] + len(logprobs.tokens[start - 1]) > prompt_chars:
        start -= 1
    stop = start
    while stop < len(offsets) and offsets[stop] < text_chars:
        stop += 1
    return range(start, stop)


class _Call:
    """One logical call: the request every attempt sends and how its answer is read."""

    __slots__ = ("body", "estimate", "output_tokens", "parse", "path", "prompt_tokens")

    def __init__(
        self,
        path: str,
        body: bytes,
        prompt_tokens: int,
        output_tokens: int,
        parse: Callable[[Any], _Parsed],
    ) -> None:
        self.path = path
        self.body = body
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.estimate = prompt_tokens + output_tokens
        self.parse = parse


class LLMClient:
    """One endpoint: its session, limiter, counters and probed capabilities.

    Use as ``async with LLMClient(config) as client:``; the API key is read on entry.
    """

    def __init__(
        self,
        config: EndpointConfig,
        *,
        transport: Transport | None = None,
        clock: Clock | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.limiter = limiter or RateLimiter(
            requests_per_minute=config.requests_per_minute,
            tokens_per_minute=config.tokens_per_minute,
            burst_s=config.burst_s,
            concurrency=config.concurrency,
            adaptive=config.adaptive,
            clock=clock,
        )
        self._transport = transport
        self._secret: Secret | None = None
        self._stats = CallStats()
        self._capabilities: Capabilities | None = None
        self._probe_lock: asyncio.Lock | None = None
        self._policy = config.retry
        self._quota_error: QuotaExceededError | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        self._secret = load_api_key(self.config)
        if self._transport is None:
            headers = {"Accept": "application/json"}
            if self._secret is not None:
                headers["Authorization"] = f"Bearer {self._secret.reveal()}"
            headers.update(self.config.headers_items())
            transport = LeanTransport if self.config.transport == "lean" else AiohttpTransport
            self._transport = transport(
                self.config.base_url,
                endpoint=self.name,
                headers=headers,
                connections=self.config.concurrency,
                connect_timeout_s=self.config.connect_timeout_s,
                timeout_s=self.config.timeout_s,
            )

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()

    async def __aenter__(self) -> LLMClient:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"LLMClient({self.config!r})"

    # -- live settings and read-outs -------------------------------------------------------------

    def reconfigure(
        self,
        *,
        requests_per_minute: float | _Unset | None = UNSET,
        tokens_per_minute: float | _Unset | None = UNSET,
        burst_s: float | _Unset = UNSET,
        concurrency: int | _Unset = UNSET,
        adaptive: bool | _Unset = UNSET,
    ) -> None:
        """Change limits or concurrency while calls run (the UI's knobs)."""
        self.limiter.reconfigure(
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            burst_s=burst_s,
            concurrency=concurrency,
            adaptive=adaptive,
        )
        if not isinstance(concurrency, _Unset) and self._transport is not None:
            self._transport.resize(concurrency)

    def clear_quota_stop(self) -> None:
        """Send calls again after a quota or billing error (once credit was added): until then
        every call fails at once with that error instead of reaching the server."""
        self._quota_error = None

    def _check_quota(self) -> None:
        first = self._quota_error
        if first is None:
            return
        raise QuotaExceededError(
            f"{first} [not sent: an earlier call met this quota error; clear_quota_stop() resumes]",
            status=first.status,
            code=first.code,
            endpoint=self.name,
        )

    def stats(self) -> StatsSnapshot:
        return self._stats.snapshot()

    @property
    def outstanding(self) -> int:
        """Calls started and not finished (queued in the limiter or in flight)."""
        return self._stats.in_flight

    # -- calls --------------------------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        n: int = 1,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Coroutine[Any, Any, Completion]:
        """POST /chat/completions (await the result). `logprobs=True` returns the generated
        tokens' log-probs. A plain function returning the call's coroutine: one frame less
        per call in flight."""
        payload: dict[str, Any] = {
            "model": self.config.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if n != 1:
            payload["n"] = n
        if stop:
            payload["stop"] = list(stop)
        if logprobs:
            payload["logprobs"] = True
            if top_logprobs is not None:
                payload["top_logprobs"] = top_logprobs
        if seed is not None:
            payload["seed"] = seed
        if extra:
            payload.update(extra)
        prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) + 4 for m in messages)
        body = _encode(payload)
        del payload  # only the bytes stay alive while the call is in flight
        return self._call(
            _Call("/chat/completions", body, prompt_tokens, max_tokens * n, _parse_chat)
        )

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        n: int = 1,
        logprobs: int | None = None,
        echo: bool = False,
        suffix: str | None = None,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Coroutine[Any, Any, Completion]:
        """POST /completions (the legacy text API that vLLM, llama.cpp and others serve);
        await the result."""
        payload: dict[str, Any] = {
            "model": self.config.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if n != 1:
            payload["n"] = n
        if stop:
            payload["stop"] = list(stop)
        if logprobs is not None:
            payload["logprobs"] = logprobs
        if echo:
            payload["echo"] = True
        if suffix is not None:
            payload["suffix"] = suffix
        if seed is not None:
            payload["seed"] = seed
        if extra:
            payload.update(extra)
        body = _encode(payload)
        del payload
        prompt_tokens = estimate_tokens(prompt)
        return self._call(
            _Call("/completions", body, prompt_tokens, max_tokens * n, _parse_completion)
        )

    async def continuation_logprob(self, prompt: str, continuation: str) -> ContinuationLogprob:
        """log P(continuation | prompt), scored on prompt + continuation (appended verbatim:
        include the separating space) with completions ``echo`` + ``logprobs`` and the
        continuation's tokens picked by ``text_offset``. Fails with an `EndpointError` naming
        the endpoint when it cannot return prompt-token log-probabilities."""
        if not continuation:
            raise EndpointError(
                f"endpoint {self.name!r}: continuation_logprob needs a non-empty continuation",
                endpoint=self.name,
            )
        capabilities = self._capabilities
        if capabilities is not None and not capabilities.prompt_logprobs:
            require_capability(capabilities, Capability.PROMPT_LOGPROBS)
        echo_max_tokens = capabilities.echo_max_tokens if capabilities is not None else 0
        text = prompt + continuation
        result = await self.complete(
            text, max_tokens=echo_max_tokens, temperature=0.0, logprobs=1, echo=True
        )
        block = result.logprobs[0] if result.logprobs else None
        if block is None or not block.text_offset:
            raise EndpointError(
                f"endpoint {self.name!r} returned no prompt-token log-probabilities for an echo "
                "request; it cannot do log-probability scoring -- use execution-accuracy scoring",
                endpoint=self.name,
                code="no_prompt_logprobs",
            )
        indices = continuation_slice(block, len(prompt), len(text))
        values: list[float] = []
        tokens: list[str] = []
        for index in indices:
            value = block.logprobs[index]
            if value is None:
                if index == 0:
                    continue  # the very first token of a text has no log-prob
                raise MalformedResponseError(
                    f"endpoint {self.name!r}: echo log-prob missing for token {index}",
                    endpoint=self.name,
                )
            values.append(value)
            tokens.append(block.tokens[index])
        if not values:
            raise EndpointError(
                f"endpoint {self.name!r}: the echoed log-probabilities do not cover the "
                "continuation (the server returned only generated tokens?) -- use "
                "execution-accuracy scoring",
                endpoint=self.name,
                code="no_prompt_logprobs",
            )
        return ContinuationLogprob(
            logprob=math.fsum(values),
            tokens=tuple(tokens),
            token_logprobs=tuple(values),
            usage=result.usage,
            latency_s=result.latency_s,
            attempts=result.attempts,
            endpoint=self.name,
        )

    # -- capabilities -------------------------------------------------------------------------

    async def capabilities(self) -> Capabilities:
        """What this endpoint can do, probed on first use and cached."""
        if self._capabilities is not None:
            return self._capabilities
        if self._probe_lock is None:
            self._probe_lock = asyncio.Lock()
        async with self._probe_lock:
            if self._capabilities is None:
                self._capabilities = await probe_capabilities(self)
        return self._capabilities

    async def require(self, capability: Capability) -> None:
        """Raise an `EndpointError` naming this endpoint and the alternative when it cannot
        serve `capability`; call before the first scoring call."""
        require_capability(await self.capabilities(), capability)

    # -- the one path every call takes ---------------------------------------------------------------
    #
    # Memory per call in flight is what bounds concurrency (bench/throughput.py part 4), so the
    # path keeps few frames alive: `_call` (counters) -> `call_with_retries` -> `_attempt` ->
    # transport, with the request held once in a slotted `_Call` instead of closure cells.

    async def _call(self, call: _Call) -> Completion:
        if self._transport is None:
            raise EndpointError(
                f"endpoint {self.name!r}: the client is not open; use 'async with LLMClient(...)'",
                endpoint=self.name,
            )
        stats = self._stats
        stats.calls += 1
        stats.in_flight += 1
        try:
            result = await call_with_retries(
                partial(self._attempt, call), self._policy, on_retry=self._count_retry
            )
        except LLMError as error:
            stats.failed += 1
            stats.final_errors[error.kind] += 1
            raise
        except BaseException:
            stats.cancelled += 1
            raise
        finally:
            stats.in_flight -= 1
        stats.succeeded += 1
        return result

    def _count_retry(self, error: LLMError, delay_s: float) -> None:
        self._stats.retries += 1

    async def _attempt(self, call: _Call, number: int) -> Completion:
        self._check_quota()
        limiter = self.limiter
        gate = SEND_GATE.get()
        if gate is not None:
            gate.check()  # a paused caller: not even queued
        permit = await limiter.acquire(call.estimate, output_tokens=call.output_tokens)
        if gate is not None and not gate.is_open:
            permit.release()  # shut while this call queued: taken back before it was sent
            gate.check()
        try:
            self._check_quota()  # met by another call while this one queued?
        except QuotaExceededError:
            permit.release()
            raise
        stats = self._stats
        stats.attempts += 1
        started = time.perf_counter()
        try:
            assert self._transport is not None
            raw = await self._transport.post(call.path, call.body)
        except LLMError as error:
            stats.errors[error.kind] += 1
            raise
        finally:
            permit.release()
        latency = time.perf_counter() - started
        if self.config.rate_limit_headers:
            # every answer re-syncs the buckets, a 429 (remaining 0) above all
            hints = parse_rate_limit_headers(raw.headers)
            if hints:
                limiter.sync(hints)
        secret = self._secret.reveal() if self._secret is not None else None
        if not 200 <= raw.status < 300:
            failure = classify_response(
                raw.status, raw.body, raw.headers, endpoint=self.name, secret=secret
            )
            stats.errors[failure.kind] += 1
            if raw.status == 429:
                stats.rate_limited += 1
            if isinstance(failure, RateLimitError):
                limiter.on_rate_limited(failure.retry_after_s, permit.sent_at)
            elif isinstance(failure, QuotaExceededError):
                self._quota_error = failure
            raise failure
        try:
            texts, reasons, logprobs, usage = call.parse(orjson.loads(raw.body))
        except (
            orjson.JSONDecodeError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
        ) as error:
            stats.errors["malformed"] += 1
            snippet = redact(raw.body[:200].decode("utf-8", "replace"), secret)
            raise MalformedResponseError(
                f"endpoint {self.name!r} sent a body that is not a {call.path} answer "
                f"({type(error).__name__}: {error}): {snippet!r}",
                status=raw.status,
                retryable=True,
                endpoint=self.name,
            ) from None
        limiter.on_success()
        if usage is None:
            usage = Usage(call.prompt_tokens, 0, call.prompt_tokens)
        else:
            permit.reconcile(usage.prompt_tokens, usage.completion_tokens)
        stats.prompt_tokens += usage.prompt_tokens
        stats.completion_tokens += usage.completion_tokens
        stats.record_latency(latency)
        return Completion(
            texts, reasons, usage, latency, number, self.name, self.config.model, logprobs
        )
