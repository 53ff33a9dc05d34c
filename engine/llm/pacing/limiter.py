"""Token-bucket rate limiter for LLM endpoints: requests/minute, tokens/minute, concurrency.

`RateLimiter` is a facade over three parts: the buckets providers limit by (buckets.py), the
AIMD search for an unknown request rate in adaptive mode (aimd.py), and, here, the FIFO of
waiters and its one timer. Waiters are woken by that timer on the clock (the aiolimiter pattern),
never by polling; limits, burst and the concurrency cap change live and apply from the next
admission without losing waiters. A 429 pauses admissions for Retry-After (and in adaptive
mode cuts the request rate); rate-limit headers re-sync the buckets and create one per limit the
provider reports.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from engine.errors import ConfigError
from engine.llm.pacing.aimd import AimdSearch, AimdSettings
from engine.llm.pacing.buckets import BucketReading, Buckets, TokenBucket
from engine.llm.pacing.clock import Clock, LoopClock, TimerHandle
from engine.llm.pacing.headers import BucketHint

__all__ = [
    "UNSET",
    "AimdSettings",
    "BucketReading",
    "LimiterReading",
    "Permit",
    "RateLimiter",
    "TokenBucket",
]


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()
"""Marks a `reconfigure` argument that is left as it is (None means "no limit")."""


@dataclass(frozen=True, slots=True)
class LimiterReading:
    """What the UI shows of a limiter. Rates are per minute; None means no limit."""

    requests_per_minute: float | None
    tokens_per_minute: float | None
    request_fill: float
    token_fill: float
    in_flight: int
    concurrency: int | None
    waiters: int
    adaptive: bool
    paused_s: float
    buckets: tuple[BucketReading, ...]


class Permit:
    """One admitted call: give it back with `release()` (frees the concurrency slot), and tell the
    limiter the real usage with `reconcile()`."""

    __slots__ = ("_limiter", "_released", "output_tokens", "sent_at", "tokens")

    def __init__(self, limiter: RateLimiter, tokens: int, output_tokens: int, now: float) -> None:
        self._limiter = limiter
        self.tokens = tokens
        self.output_tokens = output_tokens
        self.sent_at = now
        self._released = False

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    def refund(self) -> None:
        """The permit will not be used: its tokens go back to the buckets, and its slot."""
        if not self._released:
            self._limiter._refund(self)
            self.release()

    def reconcile(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Replace the estimate by the usage the server reported (refund or extra charge)."""
        self._limiter._reconcile(self, prompt_tokens, completion_tokens)
        self.tokens = prompt_tokens + completion_tokens
        self.output_tokens = completion_tokens

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release()

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class _Waiter:
    __slots__ = ("future", "output_tokens", "tokens")

    def __init__(self, future: asyncio.Future[Permit], tokens: int, output_tokens: int) -> None:
        self.future = future
        self.tokens = tokens
        self.output_tokens = output_tokens


def _positive(name: str, value: float | None) -> float | None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"limiter: {name} must be a positive number or None (got {value!r})")
    return value


class RateLimiter:
    """Admission control for one endpoint.

    `await acquire(tokens, output_tokens=...)` returns a `Permit` once one request, `tokens`
    (prompt + max_tokens) and a concurrency slot are available, first come first served.
    """

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        burst_s: float = 0.5,
        concurrency: int | None = None,
        adaptive: bool = False,
        aimd: AimdSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._buckets = Buckets(burst_s=1.0)
        self._search = AimdSearch(aimd if aimd is not None else AimdSettings(), self._buckets)
        self._waiters: deque[_Waiter] = deque()
        self._timer: TimerHandle | None = None
        self._in_flight = 0
        self._paused_until = -math.inf
        self._concurrency: int | None = None
        self._adaptive = False
        self._configured_rpm: float | None = None
        self._last_constrained_at = -math.inf
        self.reconfigure(
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            burst_s=burst_s,
            concurrency=concurrency,
            adaptive=adaptive,
        )

    # -- configuration ----------------------------------------------------------------------

    def reconfigure(
        self,
        *,
        requests_per_minute: float | _Unset | None = UNSET,
        tokens_per_minute: float | _Unset | None = UNSET,
        burst_s: float | _Unset = UNSET,
        concurrency: int | _Unset | None = UNSET,
        adaptive: bool | _Unset = UNSET,
    ) -> None:
        """Change limits live; waiters stay queued and the next admission uses the new values.
        None removes a limit; arguments left out keep their value."""
        now = self._now()
        if not isinstance(burst_s, _Unset):
            if not (burst_s > 0 and math.isfinite(burst_s)):
                raise ConfigError(f"limiter: burst_s must be a positive number (got {burst_s!r})")
            self._buckets.set_burst(burst_s, now)
        if not isinstance(concurrency, _Unset):
            if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
                raise ConfigError(
                    f"limiter: concurrency must be a whole number >= 1 or None (got {concurrency!r})"
                )
            self._concurrency = concurrency
        if not isinstance(tokens_per_minute, _Unset):
            self._buckets.set("tokens", _positive("tokens_per_minute", tokens_per_minute), now)
        if not isinstance(adaptive, _Unset):
            self._adaptive = bool(adaptive)
        if not isinstance(requests_per_minute, _Unset):
            self._configured_rpm = _positive("requests_per_minute", requests_per_minute)
        if not isinstance(requests_per_minute, _Unset) or not isinstance(adaptive, _Unset):
            self._configure_requests(now)
        self._dispatch()

    def _configure_requests(self, now: float) -> None:
        if self._adaptive:
            self._search.start(self._configured_rpm, now)
        else:
            self._buckets.set("requests", self._configured_rpm, now)

    # -- admission --------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.time()

    def _wait_s(self, tokens: int, output_tokens: int, now: float) -> float:
        return max(self._paused_until - now, self._buckets.wait_s(tokens, output_tokens, now))

    def _take(self, tokens: int, output_tokens: int, now: float) -> Permit:
        self._buckets.take(tokens, output_tokens)
        self._in_flight += 1
        return Permit(self, tokens, output_tokens, now)

    def _has_slot(self) -> bool:
        return self._concurrency is None or self._in_flight < self._concurrency

    def try_acquire(self, tokens: int = 0, *, output_tokens: int = 0) -> Permit | None:
        """A permit now if one is available without jumping the queue, else None."""
        return self._permit_now(tokens, output_tokens)

    def _permit_now(self, tokens: int, output_tokens: int) -> Permit | None:
        if self._waiters or not self._has_slot():
            return None
        now = self._now()
        if self._wait_s(tokens, output_tokens, now) > 0:
            return None
        return self._take(tokens, output_tokens, now)

    async def acquire(self, tokens: int = 0, *, output_tokens: int = 0) -> Permit:
        """Wait (FIFO) for one request, `tokens` tokens (of which `output_tokens` are the
        max_tokens part, for providers that limit output separately) and a concurrency slot."""
        permit = self._permit_now(tokens, output_tokens)
        if permit is not None:
            return permit
        future: asyncio.Future[Permit] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(future, tokens, output_tokens))
        if len(self._waiters) == 1:
            self._dispatch()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # admitted in the same instant as cancelled: give everything back
                admitted = future.result()
                self._refund(admitted)
                admitted.release()
            else:
                future.cancel()
                self._dispatch()
            raise

    def _refund(self, permit: Permit) -> None:
        self._buckets.refund(permit.tokens, permit.output_tokens)

    def _dispatch(self) -> None:
        """Admit waiters from the head while everything they need is there; otherwise set one
        timer for when the head can go (or none, when it waits for a concurrency slot)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self._waiters
        while waiters:
            waiter = waiters[0]
            if waiter.future.done():
                waiters.popleft()
                continue
            if not self._has_slot():
                return
            now = self._now()
            wait = self._wait_s(waiter.tokens, waiter.output_tokens, now)
            if wait > 0:
                self._last_constrained_at = now
                self._timer = self._clock.call_at(now + wait, self._on_timer)
                return
            waiters.popleft()
            waiter.future.set_result(self._take(waiter.tokens, waiter.output_tokens, now))

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _release(self) -> None:
        self._in_flight -= 1
        if self._waiters:
            self._dispatch()

    def _reconcile(self, permit: Permit, prompt_tokens: int, completion_tokens: int) -> None:
        refunded = self._buckets.reconcile(
            permit.tokens, permit.output_tokens, prompt_tokens, completion_tokens
        )
        if refunded and self._waiters:
            self._dispatch()

    # -- feedback from the server -----------------------------------------------------------

    def on_success(self) -> None:
        """A call succeeded: in adaptive mode the request rate may climb, while the limiter is
        what holds it back (a waiter waited for the buckets in the last second, no pause)."""
        now = self._now()
        if not self._adaptive:
            return
        limiting = now - self._last_constrained_at <= 1.0 and now >= self._paused_until
        self._search.on_success(now, limiting)

    def on_rate_limited(self, retry_after_s: float | None, sent_at: float | None = None) -> None:
        """A 429 (rate limit, not quota): pause admissions for Retry-After; in adaptive mode set
        the request rate just under what the server was accepting. A 429 for a request sent
        before the last decrease does not decrease again."""
        now = self._now()
        pause = (
            retry_after_s if retry_after_s is not None else self._search.settings.default_pause_s
        )
        self._paused_until = max(self._paused_until, now + pause)
        bucket = self._buckets.get("requests")
        if bucket is not None:
            bucket.refill(now)
            bucket.level = min(bucket.level, 0.0)
        if self._adaptive:
            self._search.on_rate_limited(now, sent_at)
        self._dispatch()

    def sync(self, hints: Iterable[BucketHint]) -> None:
        """Re-sync from the provider's rate-limit headers: adopt its limits (never above a
        limit the user set), create buckets for limits it has, and lower a bucket's level to
        what the server says remains (never raise it: in-flight calls are not in that count)."""
        now = self._now()
        changed = False
        for hint in hints:
            if hint.limit is not None and hint.limit > 0:
                changed = self._adopt_limit(hint.name, hint.limit, now) or changed
            bucket = self._buckets.get(hint.name)
            if bucket is not None and hint.remaining is not None:
                bucket.lower_to(hint.remaining, now)
        if changed and self._waiters:
            self._dispatch()

    def _adopt_limit(self, name: str, per_minute: float, now: float) -> bool:
        """True when the bucket `name` was made or its rate changed."""
        bucket = self._buckets.get(name)
        rate = per_minute / 60.0
        if bucket is None:
            self._buckets.set(name, per_minute, now)
            return True
        if bucket.adaptive:
            return self._search.adopt_limit(bucket, rate, now)
        if bucket.rate_per_s > rate:
            bucket.set_rate(rate, self._buckets.burst_s, now)
            return True
        return False

    # -- read-outs ----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiters(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.future.done())

    @property
    def concurrency(self) -> int | None:
        return self._concurrency

    @property
    def adaptive(self) -> bool:
        return self._adaptive

    def reading(self) -> LimiterReading:
        now = self._now()
        buckets = self._buckets.readings(now)
        requests = self._buckets.get("requests")
        tokens = self._buckets.get("tokens")
        return LimiterReading(
            requests_per_minute=requests.rate_per_s * 60.0 if requests else None,
            tokens_per_minute=tokens.rate_per_s * 60.0 if tokens else None,
            request_fill=requests.fill if requests else 1.0,
            token_fill=tokens.fill if tokens else 1.0,
            in_flight=self._in_flight,
            concurrency=self._concurrency,
            waiters=self.waiters,
            adaptive=self._adaptive,
            paused_s=max(0.0, self._paused_until - now),
            buckets=buckets,
        )
