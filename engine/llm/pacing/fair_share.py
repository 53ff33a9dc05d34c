"""One endpoint's rate limit shared fairly by several studies (the service's limiter layer).

Studies that call the same endpoint (same base URL, model and API-key variable) draw on one set
of endpoint buckets (`RateLimiter`: requests and tokens per minute, AIMD on 429s, header
re-sync). Each study reaches them through its own `FairShareLimiter`, which first applies what
is the study's own (its concurrency and an optional per-study rate cap), then waits for its turn
at the endpoint: turns go round-robin over the studies that have a call waiting, one admission
each, so every busy study gets an equal share of the rate and a study with nothing waiting
(paused, finished, or slower than its share) leaves its share to the others -- work-conserving
fair queueing (Demers, Keshav and Shenker 1989, "Analysis and simulation of a fair queueing
algorithm", with equal-cost requests). Only the call at the head of the line waits inside the
endpoint limiter, so the order the endpoint admits calls in is the round-robin order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from engine.llm.endpoint import EndpointConfig
from engine.llm.pacing.clock import Clock
from engine.llm.pacing.headers import BucketHint
from engine.llm.pacing.limiter import UNSET, LimiterReading, Permit, RateLimiter, _Unset

__all__ = ["EndpointKey", "FairShareLimiter", "SharedEndpoint", "SharedEndpoints"]


@dataclass(frozen=True, slots=True)
class EndpointKey:
    """What makes two clients the same endpoint for rate limiting (the key itself is never
    held: only the name of the variable or file it is read from)."""

    base_url: str
    model: str
    key_source: str | None

    @classmethod
    def of(cls, config: EndpointConfig) -> EndpointKey:
        source = config.api_key_env or config.api_key_file
        return cls(config.base_url.rstrip("/"), config.model, source)


class _Turns:
    """A round-robin gate: one holder at a time; when it passes the turn on, the next study
    (flow) in line with a waiter gets it and goes to the back of the line."""

    def __init__(self) -> None:
        self._queues: dict[int, deque[asyncio.Future[None]]] = {}
        self._line: deque[int] = deque()
        self._held = False

    def waiting(self, flow: int) -> int:
        return sum(1 for future in self._queues.get(flow, ()) if not future.done())

    async def take(self, flow: int) -> None:
        if not self._held:
            self._held = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(flow, deque())
        queue.append(future)
        if flow not in self._line:
            self._line.append(flow)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.give()  # handed the turn while being cancelled: pass it on
            else:
                future.cancel()
            raise

    def give(self) -> None:
        while self._line:
            flow = self._line.popleft()
            queue = self._queues[flow]
            while queue and queue[0].done():
                queue.popleft()
            if not queue:
                del self._queues[flow]
                continue
            future = queue.popleft()
            if any(not waiter.done() for waiter in queue):
                self._line.append(flow)
            else:
                del self._queues[flow]
            future.set_result(None)
            return
        self._held = False


class SharedEndpoint:
    """The endpoint's buckets and the turns of the studies that use them."""

    def __init__(self, key: EndpointKey, limiter: RateLimiter) -> None:
        self.key = key
        self.limiter = limiter
        # the limits as configured (an adaptive limiter's current rate may differ)
        self.requests_per_minute: float | None = None
        self.tokens_per_minute: float | None = None
        self._turns = _Turns()
        self._flows = 0
        self.members: dict[int, FairShareLimiter] = {}
        self.admitted: dict[int, int] = {}

    def set_limits(self, limits: dict[str, float | None]) -> None:
        """Change the endpoint's own limits (``requests_per_minute``, ``tokens_per_minute``;
        None removes one) for every study on it; names left out keep their value."""
        rpm = limits.get("requests_per_minute", self.requests_per_minute)
        tpm = limits.get("tokens_per_minute", self.tokens_per_minute)
        self.limiter.reconfigure(requests_per_minute=rpm, tokens_per_minute=tpm)
        self.requests_per_minute, self.tokens_per_minute = rpm, tpm

    def join(self, limiter: FairShareLimiter) -> int:
        self._flows += 1
        self.members[self._flows] = limiter
        self.admitted[self._flows] = 0
        return self._flows

    def leave(self, flow: int) -> None:
        self.members.pop(flow, None)

    def waiting(self, flow: int) -> int:
        return self._turns.waiting(flow)

    async def admit(self, flow: int, tokens: int, output_tokens: int) -> Permit:
        """The endpoint's permit for one call of `flow`, in round-robin order among flows."""
        await self._turns.take(flow)
        try:
            permit = await self.limiter.acquire(tokens, output_tokens=output_tokens)
        finally:
            self._turns.give()
        self.admitted[flow] = self.admitted.get(flow, 0) + 1
        return permit


class _JointPermit(Permit):
    """A call's permit from both its study's limiter and the endpoint's."""

    __slots__ = ("_endpoint_permit", "_own")

    def __init__(self, limiter: FairShareLimiter, own: Permit, endpoint_permit: Permit) -> None:
        super().__init__(limiter, own.tokens, own.output_tokens, endpoint_permit.sent_at)
        self._own = own
        self._endpoint_permit = endpoint_permit

    def reconcile(self, prompt_tokens: int, completion_tokens: int) -> None:
        self._own.reconcile(prompt_tokens, completion_tokens)
        self._endpoint_permit.reconcile(prompt_tokens, completion_tokens)
        self.tokens = prompt_tokens + completion_tokens
        self.output_tokens = completion_tokens

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._own.release()
            self._endpoint_permit.release()

    def refund(self) -> None:
        if not self._released:
            self._released = True
            self._own.refund()
            self._endpoint_permit.refund()


def _lower(first: float | None, second: float | None) -> float | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)


class FairShareLimiter(RateLimiter):
    """A study's limiter on a shared endpoint. Its own buckets are the study's caps (none unless
    set with `reconfigure`, which is what `Study.set_rate_limits` calls) and its concurrency is
    the study's; the endpoint's rate is shared with the other studies round-robin. Feedback from
    the server (429s, rate-limit headers, successes for AIMD) goes to the endpoint's buckets."""

    def __init__(
        self,
        endpoint: SharedEndpoint,
        *,
        concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        burst_s: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            burst_s=burst_s,
            concurrency=concurrency,
            clock=clock,
        )
        self.endpoint = endpoint
        self.flow = endpoint.join(self)

    def try_acquire(self, tokens: int = 0, *, output_tokens: int = 0) -> Permit | None:
        """Never at once: a permit of a shared endpoint waits for the study's turn."""
        return None

    async def acquire(self, tokens: int = 0, *, output_tokens: int = 0) -> Permit:
        own = await super().acquire(tokens, output_tokens=output_tokens)
        try:
            endpoint_permit = await self.endpoint.admit(self.flow, tokens, output_tokens)
        except BaseException:
            self._refund(own)
            own.release()
            raise
        return _JointPermit(self, own, endpoint_permit)

    def on_success(self) -> None:
        self.endpoint.limiter.on_success()

    def on_rate_limited(self, retry_after_s: float | None, sent_at: float | None = None) -> None:
        self.endpoint.limiter.on_rate_limited(retry_after_s, sent_at)

    def sync(self, hints: Iterable[BucketHint]) -> None:
        self.endpoint.limiter.sync(hints)

    def leave(self) -> None:
        """The study is done with the endpoint: it no longer counts as a member."""
        self.endpoint.leave(self.flow)

    @property
    def admitted(self) -> int:
        """Calls of this study the endpoint has admitted."""
        return self.endpoint.admitted.get(self.flow, 0)

    def reading(self) -> LimiterReading:
        """The study's view: effective rates are the lower of its cap and the endpoint's limit;
        fill is the emptier of the buckets that apply."""
        own = super().reading()
        shared = self.endpoint.limiter.reading()
        request_fill = min(own.request_fill, shared.request_fill)
        token_fill = min(own.token_fill, shared.token_fill)
        return LimiterReading(
            requests_per_minute=_lower(own.requests_per_minute, shared.requests_per_minute),
            tokens_per_minute=_lower(own.tokens_per_minute, shared.tokens_per_minute),
            request_fill=request_fill,
            token_fill=token_fill,
            in_flight=own.in_flight,
            concurrency=own.concurrency,
            waiters=own.waiters + self.endpoint.waiting(self.flow),
            adaptive=shared.adaptive,
            paused_s=max(own.paused_s, shared.paused_s),
            buckets=shared.buckets + own.buckets,
        )


class SharedEndpoints:
    """The endpoints of a process, by `EndpointKey`: `limiter_for(config)` gives a new study's
    client its `FairShareLimiter`. The endpoint's limit is the lowest requests and tokens per
    minute among the configs that joined it (None = no limit); an endpoint is forgotten when
    its last study leaves, so a later study starts from its own config."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock
        self.endpoints: dict[EndpointKey, SharedEndpoint] = {}

    def limiter_for(
        self, config: EndpointConfig, *, concurrency: int | _Unset | None = UNSET
    ) -> FairShareLimiter:
        key = EndpointKey.of(config)
        endpoint = self.endpoints.get(key)
        if endpoint is None or not endpoint.members:
            endpoint = SharedEndpoint(
                key,
                RateLimiter(
                    requests_per_minute=config.requests_per_minute,
                    tokens_per_minute=config.tokens_per_minute,
                    burst_s=config.burst_s,
                    adaptive=config.adaptive,
                    clock=self._clock,
                ),
            )
            self.endpoints[key] = endpoint
            endpoint.requests_per_minute = config.requests_per_minute
            endpoint.tokens_per_minute = config.tokens_per_minute
        else:
            rpm = _lower(endpoint.requests_per_minute, config.requests_per_minute)
            tpm = _lower(endpoint.tokens_per_minute, config.tokens_per_minute)
            if rpm != endpoint.requests_per_minute or tpm != endpoint.tokens_per_minute:
                endpoint.set_limits({"requests_per_minute": rpm, "tokens_per_minute": tpm})
        cap = config.concurrency if isinstance(concurrency, _Unset) else concurrency
        return FairShareLimiter(
            endpoint, concurrency=cap, burst_s=config.burst_s, clock=self._clock
        )

    def release(self, limiters: Iterable[FairShareLimiter]) -> None:
        for limiter in limiters:
            limiter.leave()
        for key in [key for key, endpoint in self.endpoints.items() if not endpoint.members]:
            del self.endpoints[key]
