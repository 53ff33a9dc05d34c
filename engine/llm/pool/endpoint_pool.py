"""Several endpoints serving one role (scoring or proposals), used as one (docs/endpoints.md).

Routing. A call admitted in advance at one endpoint's limiter (a study binding its calls late
takes permits from the pool's `limiter`, a `PoolLimiter`, and hands the call its permit in
`engine.llm.pacing.gate.ADMITTED`) goes to that endpoint, whose client takes the permit instead of
queueing again. Any other call goes to the usable endpoint with the least outstanding work per
unit of weight ("least outstanding requests", the balancing rule of Envoy and AWS ALB).

Health, a circuit breaker per endpoint (`engine.llm.pool.breaker`): an endpoint cooling down
or waiting on its one probe call takes no other call.

Failover. In a pool of several endpoints each client ends a call at a connection failure or a
timeout instead of retrying it (`LLMClient.fail_over`), and the pool sends the call to another
endpoint at once; a call that failed for good for a reason of the endpoint's (the errors above)
goes to another endpoint too. A call whose request had been sent when it failed may have been
served: sent again, it may be paid twice (`EndpointReading.resent` counts those: at most the
calls that were in flight on a server that died). When every endpoint failed the call and the
last failure was a lost connection or a timeout, the pool waits a backoff and tries them again,
up to the attempts of the retry policy; otherwise the last error is the call's.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError, EndpointError, setting_value
from engine.llm.client import LLMClient
from engine.llm.errors import (
    ConnectionFailedError,
    EndpointTimeoutError,
    LLMError,
    MalformedResponseError,
    server_gone,
)
from engine.llm.pacing.gate import ADMITTED
from engine.llm.pacing.limiter import RateLimiter
from engine.llm.pacing.pool_limiter import PoolLimiter
from engine.llm.pool.breaker import Breaker, EndpointState, endpoint_fault
from engine.llm.probing.capabilities import Capabilities, Capability
from engine.llm.protocol.results import Completion, ContinuationLogprob
from engine.llm.retry import RetryPolicy

__all__ = ["EndpointPool", "EndpointReading"]

_Call = Callable[[LLMClient], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class EndpointReading:
    """What the pool knows of one endpoint: its weight, its state (cooled: skipped for
    `cooled_s` more seconds; probing: one call at a time tests it, after a cool-down or a
    connection that broke),
    and the calls it failed that went to another endpoint (`resent`: of those, the calls whose
    request had been sent, which may have been served and paid)."""

    name: str
    weight: float
    state: EndpointState
    cooled_s: float
    failed_over: int
    resent: int


def _maybe_served(error: LLMError) -> bool:
    """Whether the request may have been served (and paid) although the call failed."""
    if isinstance(error, ConnectionFailedError):
        return error.sent
    return isinstance(error, EndpointTimeoutError | MalformedResponseError)


class EndpointPool:
    """Clients for one role. The pool does not open or close them: their owner does.
    `weights` (one per client, default 1) divide the load: an endpoint of weight 2 gets twice
    the calls in flight of one of weight 1."""

    def __init__(
        self,
        clients: Sequence[LLMClient],
        *,
        role: str,
        weights: Sequence[float] | None = None,
        failure_threshold: int = 5,
        cooldown_s: float = 15.0,
        max_cooldown_s: float = 300.0,
        retry: RetryPolicy | None = None,
        time_s: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not clients:
            raise ConfigError(f"endpoint pool {role!r}: give at least one endpoint")
        names = [client.name for client in clients]
        if len(set(names)) != len(names):
            raise ConfigError(f"endpoint pool {role!r}: endpoint names must differ ({names})")
        weights = [1.0] * len(clients) if weights is None else list(weights)
        if len(weights) != len(clients) or not all(w > 0 and math.isfinite(w) for w in weights):
            raise ConfigError(
                f"endpoint pool {role!r}: give one positive weight per endpoint (got {weights})"
            )
        self.role = self.name = role
        self.clients = tuple(clients)
        self.weights = dict(zip(names, weights, strict=True))
        self._breakers = {
            name: Breaker(failure_threshold, cooldown_s, max_cooldown_s) for name in names
        }
        self._by_limiter = {id(client.limiter): client for client in clients}
        self._retry = retry or clients[0].config.retry
        self._time_s = time_s
        self._sleep = sleep
        self.limiter: RateLimiter = PoolLimiter(self._pacing)
        if len(clients) > 1:
            for client in clients:
                client.fail_over = True

    @property
    def model(self) -> str:
        """The model of the first endpoint (each answer names the model that gave it)."""
        return self.clients[0].model

    # -- choosing an endpoint --------------------------------------------------------------------

    def _usable(self, client: LLMClient, now: float) -> bool:
        return self._breakers[client.name].usable(now)

    def _load(self, client: LLMClient) -> float:
        """Calls started (queued or on the wire) and permits given out in advance (calls about
        to start: a round's permits spread over the endpoints), per unit of weight."""
        return (client.outstanding + client.limiter.in_flight + 1) / self.weights[client.name]

    def _candidates(self, skip: set[str] | frozenset[str] = frozenset()) -> list[LLMClient]:
        """The endpoints a call may go to now, least loaded first (ties: the first listed);
        when every one is cooling, the one that recovers first."""
        now = self._time_s()
        left = [client for client in self.clients if client.name not in skip]
        usable = [client for client in left if self._usable(client, now)]
        if usable:
            return sorted(usable, key=self._load)
        return sorted(left, key=lambda client: self._breakers[client.name].cooled_until)[:1]

    def _pacing(self) -> list[RateLimiter]:
        return [client.limiter for client in self._candidates()]

    def pick(self) -> LLMClient:
        """The endpoint the next call without a permit goes to."""
        return self._candidates()[0]

    def _route(self, tried: set[str]) -> LLMClient | None:
        """The endpoint of this call: the one whose limiter admitted it in advance, while it is
        usable; else the least loaded usable one it has not failed on (None: none is left)."""
        admitted = ADMITTED.get()
        if admitted is not None and not admitted.taken:
            client = self._by_limiter.get(id(admitted.permit.limiter))
            if client is not None:
                if client.name not in tried and self._usable(client, self._time_s()):
                    return client
                admitted.taken = True  # the call goes elsewhere: its permit goes back now
                admitted.permit.refund()
        candidates = self._candidates(tried)
        return candidates[0] if candidates else None

    # -- health ----------------------------------------------------------------------------------

    def cooling(self) -> dict[str, float]:
        """Seconds of cool-down left per endpoint that is cooling."""
        now = self._time_s()
        return {
            name: breaker.cooled_until - now
            for name, breaker in self._breakers.items()
            if breaker.cooled_until > now
        }

    def readings(self) -> tuple[EndpointReading, ...]:
        now = self._time_s()
        return tuple(self._reading(client, now) for client in self.clients)

    def _reading(self, client: LLMClient, now: float) -> EndpointReading:
        breaker = self._breakers[client.name]
        return EndpointReading(
            name=client.name,
            weight=self.weights[client.name],
            state=breaker.state(now),
            cooled_s=max(0.0, breaker.cooled_until - now),
            failed_over=breaker.failed_over,
            resent=breaker.resent,
        )

    def _succeeded(self, client: LLMClient) -> None:
        self._breakers[client.name].succeeded(self._time_s())

    def _failed(self, client: LLMClient, error: LLMError, probe: bool) -> None:
        self._breakers[client.name].failed(error, probe, self._time_s())

    # -- sending -----------------------------------------------------------------------------------

    async def _on(self, client: LLMClient, call: _Call) -> Any:
        breaker = self._breakers[client.name]
        probe = breaker.unproven  # the first call after a cool-down tests the endpoint
        if probe:
            breaker.probing = True
        try:
            result = await call(client)
        except LLMError as error:
            self._failed(client, error, probe)
            raise
        finally:
            if probe:
                breaker.probing = False
        self._succeeded(client)
        return result

    async def _send(self, call: _Call) -> Any:
        tried: set[str] = set()
        rounds = 1
        failed: tuple[LLMClient, LLMError] | None = None  # the last endpoint and its error
        while True:
            client = self._route(tried)
            if client is None:  # every endpoint failed this call
                assert failed is not None
                if not server_gone(failed[1]) or rounds >= self._retry.max_attempts:
                    raise failed[1]
                await self._sleep(self._retry.delay_s(rounds, None, random.random))
                rounds += 1
                tried.clear()
                continue
            if failed is not None:  # the call goes on: count it against the one that failed it
                breaker = self._breakers[failed[0].name]
                breaker.failed_over += 1
                breaker.resent += _maybe_served(failed[1])
            try:
                return await self._on(client, call)
            except LLMError as error:
                if len(self.clients) == 1 or not endpoint_fault(error):
                    raise
                failed = (client, error)
                tried.add(client.name)

    async def chat(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        result: Completion = await self._send(lambda client: client.chat(messages, **options))
        return result

    async def complete(self, prompt: str, **options: Any) -> Completion:
        result: Completion = await self._send(lambda client: client.complete(prompt, **options))
        return result

    async def continuation_logprob(self, prompt: str, continuation: str) -> ContinuationLogprob:
        result: ContinuationLogprob = await self._send(
            lambda client: client.continuation_logprob(prompt, continuation)
        )
        return result

    # -- capabilities ----------------------------------------------------------------------------

    async def capabilities(self) -> Capabilities:
        """What the role can do: what every endpoint can (each is probed once)."""
        probed = [await client.capabilities() for client in self.clients]
        if len(probed) == 1:
            return probed[0]

        def every(capability: Capability) -> bool:
            return all(one.has(capability) for one in probed)

        return Capabilities(
            endpoint=self.name,
            completions=every(Capability.COMPLETIONS),
            chat=every(Capability.CHAT),
            prompt_logprobs=every(Capability.PROMPT_LOGPROBS),
            generated_logprobs=every(Capability.GENERATED_LOGPROBS),
            chat_logprobs=every(Capability.CHAT_LOGPROBS),
            suffix=every(Capability.SUFFIX),
            echo_max_tokens=max(one.echo_max_tokens for one in probed),
            notes=tuple(f"{note} ({one.endpoint})" for one in probed for note in one.notes),
        )

    async def require(self, capability: Capability) -> None:
        """Every endpoint of the role must serve `capability` (scores must be comparable)."""
        for client in self.clients:
            await client.require(capability)

    async def same(self, capability: Capability) -> None:
        """Raise an `EndpointError` naming the endpoints when some serve `capability` and
        others do not: a pool's answers must be alike, never mixed silently."""
        have: list[str] = []
        lack: list[str] = []
        for client in self.clients:
            (have if (await client.capabilities()).has(capability) else lack).append(client.name)
        if have and lack:
            what = capability.value.replace("_", " ")
            raise EndpointError(
                f"the {self.role} endpoints differ: {', '.join(map(repr, have))} "
                f"{'serve' if len(have) > 1 else 'serves'} {what}, {', '.join(map(repr, lack))} "
                f"{'do' if len(lack) > 1 else 'does'} not, so their scores would not be "
                "comparable; list only endpoints alike in this (or use execution-accuracy "
                f"scoring, {setting_value('scoring', 'exec')})",
                endpoint=lack[0],
                code=f"mixed_{capability.value}",
            )
