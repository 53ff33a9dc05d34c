"""The one path every call of an endpoint takes: limiter permit -> transport -> classification,
inside the one retry layer (`engine.llm.retry`), with the endpoint's learned dialect around it.

Memory per call in flight is what bounds concurrency (bench/throughput.py part 4), so the path
keeps few frames alive: `CallPath.call` (counters, dialect) -> `call_with_retries` ->
`_attempt` -> transport, with the request held once in a slotted `Request` instead of closure
cells. The steps around the send are synchronous methods: they add no frame while a call waits.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from functools import partial
from typing import Any

import orjson

from engine.errors import EndpointError
from engine.llm.calls.stats import CallStats
from engine.llm.endpoint import EndpointConfig, Secret
from engine.llm.errors import (
    LLMError,
    MalformedResponseError,
    QuotaExceededError,
    RateLimitError,
    RequestRejectedError,
    server_gone,
)
from engine.llm.pacing.gate import ADMITTED, SEND_GATE, SendGate
from engine.llm.pacing.headers import parse_rate_limit_headers
from engine.llm.pacing.limiter import Permit, RateLimiter
from engine.llm.protocol.answers import Parsed
from engine.llm.protocol.classification import classify_response, redact
from engine.llm.protocol.dialect import Adapting
from engine.llm.protocol.request import Request
from engine.llm.protocol.results import Completion, Usage
from engine.llm.retry import call_with_retries
from engine.llm.transport.interface import RawResponse, Transport
from engine.nesting import json_depth_problem

__all__ = ["CallPath"]


class CallPath:
    """Sends one endpoint's requests and reads their answers: its limiter, its counters, the
    quota stop, and the retry policy in force. `transport` and `secret` are set when the client
    opens."""

    __slots__ = (
        "_quota_error",
        "adapting",
        "config",
        "fail_over",
        "limiter",
        "name",
        "policy",
        "secret",
        "stats",
        "transport",
    )

    def __init__(self, config: EndpointConfig, limiter: RateLimiter, adapting: Adapting) -> None:
        self.config = config
        self.name = config.name
        self.limiter = limiter
        self.adapting = adapting
        self.policy = config.retry
        self.stats = CallStats()
        self.transport: Transport | None = None
        self.secret: Secret | None = None
        #: True in a pool of several endpoints: a connection failure or a timeout ends the call
        #: at once instead of being retried here, and the pool sends it to another endpoint
        self.fail_over = False
        self._quota_error: QuotaExceededError | None = None

    # -- the quota stop ------------------------------------------------------------------------

    def clear_quota_stop(self) -> None:
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

    # -- the call --------------------------------------------------------------------------------

    async def call(self, call: Request) -> Completion:
        """Send `call` (rewritten as the endpoint's dialect wants it) and count the outcome."""
        if self.transport is None:
            raise EndpointError(
                f"endpoint {self.name!r}: the client is not open; use 'async with LLMClient(...)'",
                endpoint=self.name,
            )
        stats = self.stats
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
            self.policy,
            on_retry=self._count_retry,
            hand_over=server_gone if self.fail_over else None,
        )

    def _count_retry(self, error: LLMError, delay_s: float) -> None:
        self.stats.retries += 1

    async def _attempt(self, call: Request, number: int) -> Completion:
        gate = self._gate_before_queueing()
        permit = self._admitted(call) if number == 1 else None
        if permit is None:
            permit = await self.limiter.acquire(call.estimate, output_tokens=call.output_tokens)
        self._check_still_sendable(permit, gate)
        stats = self.stats
        stats.attempts += 1
        started = time.perf_counter()
        try:
            assert self.transport is not None
            raw = await self.transport.post(call.path, call.body)
        except LLMError as error:
            stats.errors[error.kind] += 1
            raise
        finally:
            permit.release()
        latency = time.perf_counter() - started
        return self._answer(call, raw, permit, latency, number)

    # -- before the send -------------------------------------------------------------------------

    def _admitted(self, call: Request) -> Permit | None:
        """The permit the caller was admitted in advance at this endpoint's limiter, re-based on
        this request's estimate (the difference is charged or refunded); None to queue."""
        admitted = ADMITTED.get()
        if admitted is None or admitted.taken or admitted.permit.limiter is not self.limiter:
            return None
        admitted.taken = True
        permit = admitted.permit
        permit.reconcile(call.estimate - call.output_tokens, call.output_tokens)
        return permit

    def _gate_before_queueing(self) -> SendGate | None:
        """Fail before queueing at the limiter when a quota error stopped the endpoint or the
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

    # -- the answer ------------------------------------------------------------------------------

    def _answer(
        self, call: Request, raw: RawResponse, permit: Permit, latency: float, number: int
    ) -> Completion:
        """What the server answered: re-sync the limiter, then fail or count and return it."""
        if self.config.rate_limit_headers:
            # every answer re-syncs the buckets, a 429 (remaining 0) above all
            hints = parse_rate_limit_headers(raw.headers)
            if hints:
                self.limiter.sync(hints)
        secret = self.secret.reveal() if self.secret is not None else None
        if not 200 <= raw.status < 300:
            raise self._failure(raw, permit, secret)
        texts, reasons, logprobs, usage = self._parse(call, raw, secret)
        self.limiter.on_success()
        stats = self.stats
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
        error stops the endpoint."""
        failure = classify_response(
            raw.status,
            raw.body,
            raw.headers,
            endpoint=self.name,
            secret=secret,
            url=self.config.base_url,
        )
        self.stats.errors[failure.kind] += 1
        if raw.status == 429:
            self.stats.rate_limited += 1
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
            self.stats.errors["malformed"] += 1
            snippet = redact(raw.body[:200].decode("utf-8", "replace"), secret)
            raise MalformedResponseError(
                f"endpoint {self.name!r} sent a body that is not a {call.path} answer "
                f"({type(error).__name__}: {error}): {snippet!r}",
                status=raw.status,
                retryable=True,
                endpoint=self.name,
            ) from None
