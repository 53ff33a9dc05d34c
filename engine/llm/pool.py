"""Several endpoints serving one role (proposal or scoring), used as one.

Each call goes to the endpoint with the least outstanding work relative to its concurrency
("least outstanding requests", the balancing rule of Envoy and AWS ALB). An endpoint whose calls
keep failing for good is cooled down (skipped) for a while that doubles with each repeat, unless
every endpoint is cooling, in which case the one that recovers first is used.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.errors import ConfigError
from engine.llm.capabilities import Capability
from engine.llm.client import LLMClient
from engine.llm.errors import LLMError, QuotaExceededError
from engine.llm.results import Completion, ContinuationLogprob

__all__ = ["EndpointPool"]


class _Health:
    __slots__ = ("consecutive_failures", "cooldowns", "cooled_until")

    def __init__(self) -> None:
        self.consecutive_failures = 0
        self.cooldowns = 0
        self.cooled_until = -math.inf


class EndpointPool:
    """Clients for one role. The pool does not open or close them: their owner does."""

    def __init__(
        self,
        clients: Sequence[LLMClient],
        *,
        role: str,
        failure_threshold: int = 5,
        cooldown_s: float = 15.0,
        max_cooldown_s: float = 300.0,
        time_s: Callable[[], float] = time.monotonic,
    ) -> None:
        if not clients:
            raise ConfigError(f"endpoint pool {role!r}: give at least one endpoint")
        names = [client.name for client in clients]
        if len(set(names)) != len(names):
            raise ConfigError(f"endpoint pool {role!r}: endpoint names must differ ({names})")
        self.role = role
        self.clients = tuple(clients)
        self._health = {client.name: _Health() for client in clients}
        self._threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self._time_s = time_s

    def pick(self) -> LLMClient:
        """The healthy endpoint with the least outstanding work per unit of concurrency."""
        now = self._time_s()
        best: LLMClient | None = None
        best_load = math.inf
        for client in self.clients:
            if self._health[client.name].cooled_until > now:
                continue
            load = client.outstanding / (client.limiter.concurrency or client.config.concurrency)
            if load < best_load:
                best, best_load = client, load
        if best is None:
            best = min(self.clients, key=lambda c: self._health[c.name].cooled_until)
        return best

    def cooling(self) -> dict[str, float]:
        """Seconds of cool-down left per endpoint that is cooling."""
        now = self._time_s()
        return {
            name: health.cooled_until - now
            for name, health in self._health.items()
            if health.cooled_until > now
        }

    def _succeeded(self, client: LLMClient) -> None:
        health = self._health[client.name]
        health.consecutive_failures = 0
        health.cooldowns = 0

    def _failed(self, client: LLMClient, error: LLMError) -> None:
        health = self._health[client.name]
        health.consecutive_failures += 1
        if isinstance(error, QuotaExceededError) or health.consecutive_failures >= self._threshold:
            pause = min(self._max_cooldown_s, self._cooldown_s * 2.0**health.cooldowns)
            if isinstance(error, QuotaExceededError):
                pause = self._max_cooldown_s
            health.cooled_until = self._time_s() + pause
            health.cooldowns += 1
            health.consecutive_failures = 0

    async def _on(self, call: Callable[[LLMClient], Any]) -> Any:
        client = self.pick()
        try:
            result = await call(client)
        except LLMError as error:
            self._failed(client, error)
            raise
        self._succeeded(client)
        return result

    async def chat(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        result: Completion = await self._on(lambda client: client.chat(messages, **options))
        return result

    async def complete(self, prompt: str, **options: Any) -> Completion:
        result: Completion = await self._on(lambda client: client.complete(prompt, **options))
        return result

    async def continuation_logprob(self, prompt: str, continuation: str) -> ContinuationLogprob:
        result: ContinuationLogprob = await self._on(
            lambda client: client.continuation_logprob(prompt, continuation)
        )
        return result

    async def require(self, capability: Capability) -> None:
        """Every endpoint of the role must serve `capability` (scores must be comparable)."""
        for client in self.clients:
            await client.require(capability)
