"""The async client of one OpenAI-compatible endpoint: chat, completions, continuation log-prob.

Every call goes limiter -> transport -> classification, inside the one retry layer
(`engine.llm.retry`). Bodies are built and encoded once (`engine.llm.request`) and answers parsed
into small frozen results (`engine.llm.answers`, `engine.llm.results`); nothing of the raw
response outlives the call, so an in-flight call costs a coroutine and a few hundred bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any

import orjson

from engine.errors import EndpointError
from engine.llm.answers import Parsed, continuation_logprobs
from engine.llm.anthropic import anthropic_headers, messages_request, no_completions
from engine.llm.capabilities import Capabilities, Capability, probe_capabilities, require_capability
from engine.llm.clock import Clock
from engine.llm.dialect import Adapting, Dialect
from engine.llm.endpoint import EndpointConfig, Secret, load_api_key
from engine.llm.errors import (
    LLMError,
    MalformedResponseError,
    QuotaExceededError,
    RateLimitError,
    RequestRejectedError,
    classify_response,
    redact,
    server_gone,
)
from engine.llm.gate import ADMITTED, SEND_GATE, SendGate
from engine.llm.headers import parse_rate_limit_headers
from engine.llm.lean import LeanTransport
from engine.llm.limiter import UNSET, Permit, RateLimiter, _Unset
from engine.llm.request import Request, chat_request, completion_request, estimate_tokens
from engine.llm.results import Completion, ContinuationLogprob, Usage
from engine.llm.retry import RetryPolicy, call_with_retries
from engine.llm.stats import CallStats, StatsSnapshot
from engine.llm.transport import AiohttpTransport, RawResponse, Transport
from engine.nesting import json_depth_problem

__all__ = ["LLMClient", "estimate_tokens"]


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
        #: True in a pool of several endpoints: a connection failure or a timeout ends the call
        #: at once instead of being retried here, and the pool sends it to another endpoint
        self.fail_over = False
        # the parameters this endpoint takes, learned (the Messages API: one answer a request)
        one_each = Dialect(choices=False) if config.protocol == "anthropic" else None
        self.adapting = Adapting(config.name, one_each)

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        self._secret = load_api_key(self.config)
        if self._transport is None:
            headers = self.auth_headers()
            transport = LeanTransport if self.config.transport == "lean" else AiohttpTransport
            self._transport = transport(
                self.config.base_url,
                endpoint=self.name,
                headers=headers,
                connections=self.config.concurrency,
                connect_timeout_s=self.config.connect_timeout_s,
                timeout_s=self.config.timeout_s,
            )

    def auth_headers(self) -> dict[str, str]:
        """The headers every request carries, the key among them (for a request outside the
        transport, such as the preflight's GET /models); never shown anywhere."""
        key = self._secret.reveal() if self._secret is not None else None
        if self.config.protocol == "anthropic":
            headers = anthropic_headers(key)
        else:
            headers = {"Accept": "application/json"}
            if key is not None:
                headers["Authorization"] = f"Bearer {key}"
        headers.update(self.config.headers_items())
        return headers

    @property
    def secret(self) -> str | None:  # for cutting the key out of messages, never for showing
        return self._secret.reveal() if self._secret is not None else None

    @contextlib.contextmanager
    def retry_policy(self, policy: RetryPolicy) -> Iterator[None]:
        """Calls made inside the block retry by `policy` (the preflight: fail in a second)."""
        previous, self._policy = self._policy, policy
        try:
            yield
        finally:
            self._policy = previous

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

    def resize(self, connections: int) -> None:
        """Keep up to `connections` connections open (a study's concurrency changed; the
        limiter's own cap, if it has one, is left as it is)."""
        if self._transport is not None:
            self._transport.resize(connections)

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
    def model(self) -> str:
        return self.config.model

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
        per call in flight. On an Anthropic endpoint it is a Messages API call (no log-probs)."""
        if self.config.protocol == "anthropic":
            return self._call(
                messages_request(
                    self.config.model,
                    messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stop=stop,
                    n=n,
                    extra=extra,
                )
            )
        request = chat_request(
            self.config.model,
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            n=n,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            seed=seed,
            extra=extra,
        )
        return self._call(request)

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
        if self.config.protocol == "anthropic":
            return no_completions(self.name)
        request = completion_request(
            self.config.model,
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            n=n,
            logprobs=logprobs,
            echo=echo,
            suffix=suffix,
            seed=seed,
            extra=extra,
        )
        return self._call(request)

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
        tokens, values = continuation_logprobs(block, len(prompt), len(text), self.name)
        return ContinuationLogprob(
            logprob=math.fsum(values),
            tokens=tuple(tokens),
            token_logprobs=tuple(values),
            usage=result.usage,
            latency_s=result.latency_s,
            attempts=result.attempts,
            endpoint=self.name,
            model=result.model,
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
    # transport, with the request held once in a slotted `Request` instead of closure cells.
    # The steps around the send are synchronous methods: they add no frame while a call waits.

    async def _call(self, call: Request) -> Completion:
        if self._transport is None:
            raise EndpointError(
                f"endpoint {self.name!r}: the client is not open; use 'async with LLMClient(...)'",
                endpoint=self.name,
            )
        stats = self._stats
        stats.calls += 1
        stats.in_flight += 1
        adapting = self.adapting
        try:
            if call.choices == 1 and not adapting.dialect.rewrites:
                try:  # the common path: no frame more per call in flight
                    result = await self._with_retries(call)
                except RequestRejectedError as refused:  # perhaps a parameter to adapt
                    result = await adapting.send(call, self._with_retries, refused)
            else:
                result = await adapting.send(call, self._with_retries)
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

    def _with_retries(self, call: Request) -> Coroutine[Any, Any, Completion]:
        return call_with_retries(
            partial(self._attempt, call),
            self._policy,
            on_retry=self._count_retry,
            hand_over=server_gone if self.fail_over else None,
        )

    def _count_retry(self, error: LLMError, delay_s: float) -> None:
        self._stats.retries += 1

    async def _attempt(self, call: Request, number: int) -> Completion:
        gate = self._gate_before_queueing()
        permit = self._admitted(call) if number == 1 else None
        if permit is None:
            permit = await self.limiter.acquire(call.estimate, output_tokens=call.output_tokens)
        self._check_still_sendable(permit, gate)
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
        return self._answer(call, raw, permit, latency, number)

    def _admitted(self, call: Request) -> Permit | None:
        """The permit the caller was admitted in advance at this client's limiter, re-based on
        this request's estimate (the difference is charged or refunded); None to queue."""
        admitted = ADMITTED.get()
        if admitted is None or admitted.taken or admitted.permit.limiter is not self.limiter:
            return None
        admitted.taken = True
        permit = admitted.permit
        permit.reconcile(call.estimate - call.output_tokens, call.output_tokens)
        return permit

    def _gate_before_queueing(self) -> SendGate | None:
        """Fail before queueing at the limiter when a quota error stopped the client or the
        caller's gate is shut (a paused caller: not even queued); the gate to check again."""
        self._check_quota()
        gate = SEND_GATE.get()
        if gate is not None:
            gate.check()
        return gate

    def _check_still_sendable(self, permit: Permit, gate: SendGate | None) -> None:
        """Give the permit back and fail when the gate shut or a quota error was met (by another
        call) while this call queued: it is taken back before it was sent."""
        if gate is not None and not gate.is_open:
            permit.release()
            gate.check()
        try:
            self._check_quota()
        except QuotaExceededError:
            permit.release()
            raise

    def _answer(
        self, call: Request, raw: RawResponse, permit: Permit, latency: float, number: int
    ) -> Completion:
        """What the server answered: re-sync the limiter, then fail or count and return it."""
        if self.config.rate_limit_headers:
            # every answer re-syncs the buckets, a 429 (remaining 0) above all
            hints = parse_rate_limit_headers(raw.headers)
            if hints:
                self.limiter.sync(hints)
        secret = self._secret.reveal() if self._secret is not None else None
        if not 200 <= raw.status < 300:
            raise self._failure(raw, permit, secret)
        texts, reasons, logprobs, usage = self._parse(call, raw, secret)
        self.limiter.on_success()
        stats = self._stats
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

    def _failure(self, raw: RawResponse, permit: Permit, secret: str | None) -> LLMError:
        """The error a non-2xx answer means, counted; a 429 slows the limiter down and a quota
        error stops the client."""
        failure = classify_response(
            raw.status,
            raw.body,
            raw.headers,
            endpoint=self.name,
            secret=secret,
            url=self.config.base_url,
        )
        self._stats.errors[failure.kind] += 1
        if raw.status == 429:
            self._stats.rate_limited += 1
        if isinstance(failure, RateLimitError):
            self.limiter.on_rate_limited(failure.retry_after_s, permit.sent_at)
        elif isinstance(failure, QuotaExceededError):
            self._quota_error = failure
        return failure

    def _parse(self, call: Request, raw: RawResponse, secret: str | None) -> Parsed:
        try:
            if (deep := json_depth_problem(raw.body)) is not None:
                raise ValueError(f"the JSON is {deep}")
            return call.parse(orjson.loads(raw.body))
        except (
            orjson.JSONDecodeError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
        ) as error:
            self._stats.errors["malformed"] += 1
            snippet = redact(raw.body[:200].decode("utf-8", "replace"), secret)
            raise MalformedResponseError(
                f"endpoint {self.name!r} sent a body that is not a {call.path} answer "
                f"({type(error).__name__}: {error}): {snippet!r}",
                status=raw.status,
                retryable=True,
                endpoint=self.name,
            ) from None
