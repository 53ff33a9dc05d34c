"""The one retry layer: bounded attempts, exponential backoff with full jitter, Retry-After.

Backoff follows "Exponential Backoff And Jitter" (Brooker, AWS Architecture Blog, 2015): the
n-th retry waits uniform(0, min(cap, base * 2**(n-1))). When the server says how long to wait
(``Retry-After``, ``retry-after-ms``, or "try again in 20ms" in the message) that wait is honoured,
with up to 10 % added so that many callers told the same moment do not return in one burst.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from engine.errors import ConfigError
from engine.llm.errors import LLMError

__all__ = ["RetryPolicy", "call_with_retries"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6  # attempts in all, the first included
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 300.0  # a longer Retry-After is capped to this

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"retry: max_attempts must be >= 1 (got {self.max_attempts})")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ConfigError("retry: base_delay_s and max_delay_s must be >= 0")

    def delay_s(
        self, retry: int, retry_after_s: float | None, uniform: Callable[[], float]
    ) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        if retry_after_s is not None:
            wait = min(retry_after_s, self.max_retry_after_s)
            return wait * (1.0 + 0.1 * uniform())
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (retry - 1))
        return ceiling * uniform()


async def call_with_retries(
    attempt: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[LLMError, float], None] | None = None,
    hand_over: Callable[[LLMError], bool] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    uniform: Callable[[], float] = random.random,
) -> T:
    """Run `attempt(n)` for n = 1, 2, ... until it returns, raises a final `LLMError`, or the
    attempts run out (then the last error is raised). An error `hand_over` is true of is
    raised at once, for the caller to try elsewhere (an endpoint pool). Anything that is not an
    `LLMError` (cancellation, bugs) passes through untouched."""
    number = 1
    while True:
        try:
            return await attempt(number)
        except LLMError as error:
            error.attempts = number
            if hand_over is not None and hand_over(error):
                raise
            if not error.retryable or number >= policy.max_attempts:
                if error.retryable:
                    error.args = (f"{error.args[0]} (gave up after {number} attempts)",)
                raise
            delay = policy.delay_s(number, error.retry_after_s, uniform)
            if on_retry is not None:
                on_retry(error, delay)
        await sleep(delay)
        number += 1
