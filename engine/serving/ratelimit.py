"""Rate limits as the OpenAI API applies them: a requests-per-minute and a tokens-per-minute
token bucket, globally or per API key, reported in ``x-ratelimit-*`` headers on every answer.

Reference: OpenAI "Rate limits" guide -- headers ``x-ratelimit-limit-requests``,
``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` (time until the bucket is full
again, as a Go-style duration: ``6m0s``, ``1s``, ``20ms``) and the same for ``tokens``; a 429
carries ``Retry-After`` (whole seconds, RFC 9110 section 10.2.3) and ``retry-after-ms``.
A bucket holds up to one minute's allowance and refills continuously; a request takes one
request and its estimated tokens (prompt tokens plus ``max_tokens`` per choice), and the
difference to what it really used is given back once it is answered.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Admission", "Bucket", "RateLimiter", "format_duration"]


def format_duration(seconds: float) -> str:
    """A Go-style duration as OpenAI writes resets: ``"20ms"``, ``"1s"``, ``"1.5s"``, ``"6m0s"``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1.0:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60.0)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".")
    if minutes < 1:
        return f"{rest_text}s"
    hours, minutes = divmod(int(minutes), 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{rest_text}s"


class Bucket:
    """A token bucket of `limit` units per minute, full at the start."""

    __slots__ = ("_clock", "_level", "_rate_s", "_updated", "limit")

    def __init__(self, limit: float, clock: Callable[[], float]) -> None:
        self.limit = float(limit)
        self._rate_s = self.limit / 60.0
        self._clock = clock
        self._level = self.limit
        self._updated = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._level = min(self.limit, self._level + (now - self._updated) * self._rate_s)
        self._updated = now
        return self._level

    def wait_s(self, amount: float) -> float:
        """Seconds until `amount` is available (0 when it is now). A request larger than the
        whole bucket is let through when the bucket is full, so that it never waits forever."""
        level = self._refill()
        need = min(amount, self.limit)
        return 0.0 if level >= need else (need - level) / self._rate_s

    def take(self, amount: float) -> None:
        self._refill()
        self._level -= amount

    def give_back(self, amount: float) -> None:
        self._refill()
        self._level = min(self.limit, self._level + amount)

    def remaining(self) -> int:
        return max(0, math.floor(self._refill()))

    def reset_s(self) -> float:
        return max(0.0, (self.limit - self._refill()) / self._rate_s)


@dataclass(frozen=True, slots=True)
class Admission:
    """The limiter's answer to one request: admitted, or which bucket refused and for how long."""

    admitted: bool
    bucket: str = ""  # "requests" or "tokens" when refused
    retry_after_s: float = 0.0


class _Pair:
    __slots__ = ("requests", "tokens")

    def __init__(self, requests: Bucket | None, tokens: Bucket | None) -> None:
        self.requests = requests
        self.tokens = tokens


class RateLimiter:
    """Requests and tokens buckets, one pair for everyone or one per API key."""

    def __init__(
        self,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        *,
        per_key: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.per_key = per_key
        self._clock = clock
        self._pairs: dict[str, _Pair] = {}

    @property
    def active(self) -> bool:
        return self.requests_per_minute is not None or self.tokens_per_minute is not None

    def _pair(self, key: str) -> _Pair:
        name = key if self.per_key else ""
        pair = self._pairs.get(name)
        if pair is None:
            rpm, tpm = self.requests_per_minute, self.tokens_per_minute
            pair = _Pair(
                Bucket(rpm, self._clock) if rpm is not None else None,
                Bucket(tpm, self._clock) if tpm is not None else None,
            )
            self._pairs[name] = pair
        return pair

    def admit(self, key: str, tokens: int) -> Admission:
        """Take one request and `tokens` from `key`'s buckets, or say which one is short."""
        pair = self._pair(key)
        if pair.requests is not None:
            wait = pair.requests.wait_s(1)
            if wait > 0:
                return Admission(False, "requests", wait)
        if pair.tokens is not None:
            wait = pair.tokens.wait_s(tokens)
            if wait > 0:
                return Admission(False, "tokens", wait)
        if pair.requests is not None:
            pair.requests.take(1)
        if pair.tokens is not None:
            pair.tokens.take(tokens)
        return Admission(True)

    def reconcile(self, key: str, estimated: int, used: int) -> None:
        """Give back what a request reserved beyond what it used."""
        pair = self._pair(key)
        if pair.tokens is not None and estimated > used:
            pair.tokens.give_back(estimated - used)

    def headers(self, key: str) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers of `key`'s buckets (none when unlimited)."""
        if not self.active:
            return {}
        pair = self._pair(key)
        headers: dict[str, str] = {}
        for name, bucket in (("requests", pair.requests), ("tokens", pair.tokens)):
            if bucket is not None:
                headers[f"x-ratelimit-limit-{name}"] = str(int(bucket.limit))
                headers[f"x-ratelimit-remaining-{name}"] = str(bucket.remaining())
                headers[f"x-ratelimit-reset-{name}"] = format_duration(bucket.reset_s())
        return headers
