"""Token-bucket rate limiter for LLM endpoints: requests/minute, tokens/minute, concurrency.

The buckets are the ones providers limit by (OpenAI "Rate limits" guide; Anthropic "Rate limits"):
a call takes one request and its estimated tokens (prompt + max_tokens) and the estimate is
reconciled with the usage that comes back. Waiters queue FIFO and are woken by one timer on the
clock (the aiolimiter pattern), never by polling; limits, burst and the concurrency cap change live
and apply from the next admission without losing waiters. In adaptive mode the request rate is
found by AIMD (Jacobson 1988, "Congestion Avoidance and Control"): a 429 pauses the buckets for
Retry-After and sets the rate just under the rate the server was accepting; success while the
limiter is the bottleneck raises it by a constant step (after a doubling "slow start"). Rate-limit
headers re-sync the buckets and create one per limit the provider reports.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from engine.errors import ConfigError
from engine.llm.clock import Clock, LoopClock, TimerHandle
from engine.llm.headers import BucketHint

__all__ = [
    "UNSET",
    "AimdSettings",
    "BucketReading",
    "LimiterReading",
    "Permit",
    "RateLimiter",
    "TokenBucket",
]

_EPSILON = 1e-9


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()
"""Marks a `reconfigure` argument that is left as it is (None means "no limit")."""


@dataclass(frozen=True, slots=True)
class AimdSettings:
    """How adaptive mode searches for an unknown request limit."""

    start_requests_per_minute: float = 60.0
    min_requests_per_minute: float = 1.0
    decrease: float = 0.95  # after a 429: rate = decrease x the rate the server was accepting
    stale_decrease: float = 0.9  # ... or x the current rate when that is already lower
    increase_per_s: float = 0.01  # additive step per second, as a share of the post-429 rate
    default_pause_s: float = 1.0  # pause after a 429 without Retry-After
    window_s: float = 2.0  # window over which the accepted rate is measured


class TokenBucket:
    """One bucket: `capacity` units, refilled at `rate_per_s`. Mutable, owned by one limiter.

    A request larger than the capacity waits for a full bucket and then leaves it in debt, so
    the long-run rate still holds.
    """

    __slots__ = (
        "adaptive",
        "capacity",
        "ceiling_per_s",
        "level",
        "name",
        "rate_per_s",
        "updated_at",
    )

    def __init__(self, name: str, rate_per_s: float, capacity: float, now: float) -> None:
        self.name = name
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self.level = capacity
        self.updated_at = now
        self.adaptive = False
        self.ceiling_per_s = math.inf

    def refill(self, now: float) -> None:
        if now > self.updated_at:
            self.level = min(self.capacity, self.level + self.rate_per_s * (now - self.updated_at))
            self.updated_at = now

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until `amount` can be taken (0 when it can be now). Call after `refill`."""
        need = min(amount, self.capacity) - self.level
        if need <= _EPSILON * max(1.0, self.capacity):
            return 0.0
        return need / self.rate_per_s

    def set_rate(self, rate_per_s: float, burst_s: float, now: float) -> None:
        self.refill(now)
        self.rate_per_s = rate_per_s
        self.capacity = max(1.0, rate_per_s * burst_s)
        self.level = min(self.level, self.capacity)

    @property
    def fill(self) -> float:
        return max(0.0, min(1.0, self.level / self.capacity))


@dataclass(frozen=True, slots=True)
class BucketReading:
    name: str
    per_minute: float
    capacity: float
    level: float
    fill: float
    adaptive: bool


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


class _RateMeter:
    """Successes per second over a sliding window, in 100 ms slots."""

    __slots__ = ("_first", "_slots", "_window_s")

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._slots: deque[list[float]] = deque()  # [slot start, count]
        self._first: float | None = None

    def add(self, now: float) -> None:
        if self._first is None:
            self._first = now
        start = math.floor(now * 10.0) / 10.0
        if self._slots and self._slots[-1][0] == start:
            self._slots[-1][1] += 1
        else:
            self._slots.append([start, 1.0])
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._slots and self._slots[0][0] < now - self._window_s:
            self._slots.popleft()

    def rate_since(self, since: float, now: float) -> float:
        """Successes per second from `since` (rounded down to a slot) until now; 0 when that is
        shorter than half a second or outside the window."""
        if since < now - self._window_s:
            return 0.0
        start = math.floor(since * 10.0) / 10.0
        if now - start < 0.5:
            return 0.0
        self._trim(now)
        return sum(slot[1] for slot in self._slots if slot[0] >= start) / (now - start)

    def rate_per_s(self, now: float) -> float:
        """The larger of the rates over the whole window and over its second half: a rate that
        was climbing until now is underestimated by the whole window's mean."""
        self._trim(now)
        if self._first is None or not self._slots:
            return 0.0
        span = min(self._window_s, now - self._first)
        if span <= 0.05:
            return 0.0
        whole = sum(slot[1] for slot in self._slots) / span
        half_s = span / 2.0
        recent = sum(slot[1] for slot in self._slots if slot[0] >= now - half_s)
        return max(whole, recent / half_s) if half_s > 0.05 else whole


def _amount(bucket_name: str, tokens: int, output_tokens: int) -> int:
    if bucket_name == "requests":
        return 1
    if bucket_name == "input_tokens":
        return max(0, tokens - output_tokens)
    if bucket_name == "output_tokens":
        return output_tokens
    return tokens


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
        self._aimd = aimd if aimd is not None else AimdSettings()
        self._buckets: dict[str, TokenBucket] = {}
        self._waiters: deque[_Waiter] = deque()
        self._timer: TimerHandle | None = None
        self._in_flight = 0
        self._paused_until = -math.inf
        self._burst_s = 1.0
        self._concurrency: int | None = None
        self._adaptive = False
        self._configured_rpm: float | None = None
        self._slow_start = False
        self._step_per_s = 0.0
        self._last_decrease_at = -math.inf
        self._last_increase_at = -math.inf
        self._last_constrained_at = -math.inf
        self._meter = _RateMeter(self._aimd.window_s)
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
            self._burst_s = burst_s
            for bucket in self._buckets.values():
                bucket.set_rate(bucket.rate_per_s, burst_s, now)
        if not isinstance(concurrency, _Unset):
            if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
                raise ConfigError(
                    f"limiter: concurrency must be a whole number >= 1 or None (got {concurrency!r})"
                )
            self._concurrency = concurrency
        if not isinstance(tokens_per_minute, _Unset):
            self._set_bucket("tokens", _positive("tokens_per_minute", tokens_per_minute), now)
        if not isinstance(adaptive, _Unset):
            self._adaptive = bool(adaptive)
        if not isinstance(requests_per_minute, _Unset):
            self._configured_rpm = _positive("requests_per_minute", requests_per_minute)
        if not isinstance(requests_per_minute, _Unset) or not isinstance(adaptive, _Unset):
            self._configure_requests(now)
        self._dispatch()

    def _configure_requests(self, now: float) -> None:
        rpm = self._configured_rpm
        if not self._adaptive:
            self._set_bucket("requests", rpm, now)
            return
        if rpm is not None:
            bucket = self._set_bucket("requests", rpm, now)
            self._slow_start = False
        else:
            existing = self._buckets.get("requests")
            start = self._aimd.start_requests_per_minute
            bucket = existing or self._set_bucket("requests", start, now)
            self._slow_start = existing is None
        assert bucket is not None
        bucket.adaptive = True
        bucket.ceiling_per_s = rpm / 60.0 if rpm is not None else math.inf
        self._step_per_s = bucket.rate_per_s * self._aimd.increase_per_s

    def _set_bucket(self, name: str, per_minute: float | None, now: float) -> TokenBucket | None:
        if per_minute is None:
            self._buckets.pop(name, None)
            return None
        bucket = self._buckets.get(name)
        rate = per_minute / 60.0
        if bucket is None:
            bucket = TokenBucket(name, rate, max(1.0, rate * self._burst_s), now)
            self._buckets[name] = bucket
        else:
            bucket.set_rate(rate, self._burst_s, now)
        return bucket

    # -- admission --------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.time()

    def _wait_s(self, tokens: int, output_tokens: int, now: float) -> float:
        wait = self._paused_until - now
        for bucket in self._buckets.values():
            bucket.refill(now)
            bucket_wait = bucket.wait_s(_amount(bucket.name, tokens, output_tokens), now)
            if bucket_wait > wait:
                wait = bucket_wait
        return wait

    def _take(self, tokens: int, output_tokens: int, now: float) -> Permit:
        for bucket in self._buckets.values():
            bucket.level -= _amount(bucket.name, tokens, output_tokens)
        self._in_flight += 1
        return Permit(self, tokens, output_tokens, now)

    def _has_slot(self) -> bool:
        return self._concurrency is None or self._in_flight < self._concurrency

    def try_acquire(self, tokens: int = 0, *, output_tokens: int = 0) -> Permit | None:
        """A permit now if one is available without jumping the queue, else None."""
        if self._waiters or not self._has_slot():
            return None
        now = self._now()
        if self._wait_s(tokens, output_tokens, now) > 0:
            return None
        return self._take(tokens, output_tokens, now)

    async def acquire(self, tokens: int = 0, *, output_tokens: int = 0) -> Permit:
        """Wait (FIFO) for one request, `tokens` tokens (of which `output_tokens` are the
        max_tokens part, for providers that limit output separately) and a concurrency slot."""
        permit = self.try_acquire(tokens, output_tokens=output_tokens)
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
        for bucket in self._buckets.values():
            bucket.level = min(
                bucket.capacity,
                bucket.level + _amount(bucket.name, permit.tokens, permit.output_tokens),
            )

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
        refunded = False
        actual_total = prompt_tokens + completion_tokens
        for bucket in self._buckets.values():
            if bucket.name == "requests":
                continue
            estimate = _amount(bucket.name, permit.tokens, permit.output_tokens)
            actual = _amount(bucket.name, actual_total, completion_tokens)
            if actual == estimate:
                continue
            bucket.level = min(bucket.capacity, bucket.level + (estimate - actual))
            refunded = refunded or actual < estimate
        if refunded and self._waiters:
            self._dispatch()

    # -- feedback from the server -----------------------------------------------------------

    def on_success(self) -> None:
        """A call succeeded: in adaptive mode the request rate may climb."""
        now = self._now()
        if not self._adaptive:
            return
        self._meter.add(now)
        bucket = self._buckets.get("requests")
        elapsed = now - self._last_increase_at
        self._last_increase_at = now
        if bucket is None or not bucket.adaptive or elapsed <= 0 or elapsed == math.inf:
            return
        if now - self._last_constrained_at > 1.0 or now < self._paused_until:
            return  # the limiter is not what holds the rate back: do not grow blindly
        if self._slow_start:
            rate = bucket.rate_per_s * 2.0**elapsed
        else:
            rate = bucket.rate_per_s + self._step_per_s * elapsed
        rate = min(rate, bucket.ceiling_per_s)
        if rate != bucket.rate_per_s:
            bucket.set_rate(rate, self._burst_s, now)

    def on_rate_limited(self, retry_after_s: float | None, sent_at: float | None = None) -> None:
        """A 429 (rate limit, not quota): pause admissions for Retry-After; in adaptive mode set
        the request rate just under what the server was accepting. A 429 for a request sent
        before the last decrease does not decrease again."""
        now = self._now()
        pause = retry_after_s if retry_after_s is not None else self._aimd.default_pause_s
        self._paused_until = max(self._paused_until, now + pause)
        bucket = self._buckets.get("requests")
        if bucket is not None:
            bucket.refill(now)
            bucket.level = min(bucket.level, 0.0)
        fresh = sent_at is None or sent_at >= self._last_decrease_at
        if self._adaptive and bucket is not None and bucket.adaptive and fresh:
            accepted = self._meter.rate_per_s(now)
            if accepted > 0:
                if bucket.rate_per_s < accepted:
                    # refused although already below what was accepted lately: that rate came
                    # from the server's stored burst, now spent. What it accepted since our
                    # last cut is its real rate; without that, cut the current rate
                    since = self._meter.rate_since(self._last_decrease_at, now)
                    if 0 < since < bucket.rate_per_s:
                        rate = since * self._aimd.decrease
                    else:
                        rate = bucket.rate_per_s * self._aimd.stale_decrease
                else:
                    rate = accepted * self._aimd.decrease
                self._slow_start = False
            else:
                # nothing of ours was accepted lately: the server's bucket was empty before we
                # came (another client, an earlier run), which says nothing about its rate;
                # back off but keep searching fast
                rate = bucket.rate_per_s * 0.5
            rate = max(rate, self._aimd.min_requests_per_minute / 60.0)
            bucket.set_rate(rate, self._burst_s, now)
            self._step_per_s = rate * self._aimd.increase_per_s
            self._last_decrease_at = now
        self._dispatch()

    def sync(self, hints: Iterable[BucketHint]) -> None:
        """Re-sync from the provider's rate-limit headers: adopt its limits (never above a
        limit the user set), create buckets for limits it has, and lower a bucket's level to
        what the server says remains (never raise it: in-flight calls are not in that count)."""
        now = self._now()
        changed = False
        for hint in hints:
            bucket = self._buckets.get(hint.name)
            if hint.limit is not None and hint.limit > 0:
                rate = hint.limit / 60.0
                if bucket is None:
                    bucket = TokenBucket(hint.name, rate, max(1.0, rate * self._burst_s), now)
                    self._buckets[hint.name] = bucket
                    changed = True
                elif bucket.adaptive:
                    bucket.ceiling_per_s = rate
                    if self._slow_start or bucket.rate_per_s > rate:
                        bucket.set_rate(rate, self._burst_s, now)
                        self._slow_start = False
                        self._step_per_s = rate * self._aimd.increase_per_s
                        changed = True
                elif bucket.rate_per_s > rate:
                    bucket.set_rate(rate, self._burst_s, now)
                    changed = True
            if bucket is not None and hint.remaining is not None:
                bucket.refill(now)
                if hint.remaining < bucket.level:
                    bucket.level = hint.remaining
        if changed and self._waiters:
            self._dispatch()

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
        buckets = []
        for bucket in self._buckets.values():
            bucket.refill(now)
            buckets.append(
                BucketReading(
                    bucket.name,
                    bucket.rate_per_s * 60.0,
                    bucket.capacity,
                    bucket.level,
                    bucket.fill,
                    bucket.adaptive,
                )
            )
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
            buckets=tuple(buckets),
        )
