"""The pacing of an endpoint pool: one permit from whichever endpoint's limiter admits first.

A study that binds each call late (docs/design.md, "The study") waits at its scorer's limiter
for one permit, then takes whatever further permits are ready at once. Over a pool of endpoints
that limiter is a `PoolLimiter`: `try_acquire` asks each endpoint's own limiter in turn (the
least loaded first), and `acquire` waits at all of them at once and keeps the first permit any
of them gives, handing back the others. So the study draws on the sum of the endpoints' limits,
and each permit is the permit of one endpoint: the pool sends the call it admits there (the
permit's `limiter` says which), and the endpoint's client takes it instead of queueing again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from engine.llm.pacing.limiter import LimiterReading, Permit, RateLimiter

__all__ = ["PoolLimiter", "first_permit"]


class PoolLimiter(RateLimiter):
    """The admission of a pool: permits of its members' limiters. `members()` gives the
    limiters a call may go to now, in the order to ask them. Its own buckets stay empty: the
    limits are the members' (change them there)."""

    def __init__(self, members: Callable[[], Sequence[RateLimiter]]) -> None:
        super().__init__()
        self._members = members

    def try_acquire(self, tokens: int = 0, *, output_tokens: int = 0) -> Permit | None:
        """A permit of the first member that has one now, else None."""
        for limiter in self._members():
            permit = limiter.try_acquire(tokens, output_tokens=output_tokens)
            if permit is not None:
                return permit
        return None

    async def acquire(self, tokens: int = 0, *, output_tokens: int = 0) -> Permit:
        """The first permit any member gives (a permit of one endpoint)."""
        permit = self.try_acquire(tokens, output_tokens=output_tokens)
        if permit is not None:
            return permit
        return await first_permit(self._members(), tokens, output_tokens)

    def reading(self) -> LimiterReading:
        """The members' readings added up (rates: None when any member is unlimited)."""
        readings = [limiter.reading() for limiter in self._members()]
        if not readings:
            return super().reading()

        def total(values: list[float | None]) -> float | None:
            return None if any(v is None for v in values) else sum(v or 0.0 for v in values)

        return LimiterReading(
            requests_per_minute=total([r.requests_per_minute for r in readings]),
            tokens_per_minute=total([r.tokens_per_minute for r in readings]),
            request_fill=min(r.request_fill for r in readings),
            token_fill=min(r.token_fill for r in readings),
            in_flight=sum(r.in_flight for r in readings),
            concurrency=None,
            waiters=sum(r.waiters for r in readings),
            adaptive=any(r.adaptive for r in readings),
            paused_s=min(r.paused_s for r in readings),
            buckets=(),
        )


def _give_back(task: asyncio.Task[Permit]) -> None:
    """A permit a losing waiter got after all (admitted in the same instant) goes back."""
    if not task.cancelled() and task.exception() is None:
        task.result().refund()


async def first_permit(limiters: Sequence[RateLimiter], tokens: int, output_tokens: int) -> Permit:
    """Wait at every limiter of `limiters` at once; the first permit wins, the others are
    cancelled (a permit given at the same instant is refunded). Cancelled itself, it leaves
    nothing taken."""
    if len(limiters) == 1:
        return await limiters[0].acquire(tokens, output_tokens=output_tokens)
    waiters = [
        asyncio.ensure_future(limiter.acquire(tokens, output_tokens=output_tokens))
        for limiter in limiters
    ]
    winner: asyncio.Task[Permit] | None = None
    try:
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        winner = next(task for task in waiters if task in done)
        return winner.result()  # or its error
    finally:
        for task in waiters:
            if task is not winner:
                task.cancel()
                task.add_done_callback(_give_back)
