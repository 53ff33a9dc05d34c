"""Token buckets: one per unit a provider limits by (requests, tokens, input or output tokens).

A call takes one request and its estimated tokens (prompt + max_tokens) from every bucket, and the
estimate is reconciled with the usage that comes back (OpenAI "Rate limits" guide; Anthropic "Rate
limits"). `Buckets` holds one endpoint's buckets by name with their shared burst; the limiter
(limiter.py) decides who is admitted against them and when.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["BucketReading", "Buckets", "TokenBucket", "charge"]

_EPSILON = 1e-9


def charge(bucket_name: str, tokens: int, output_tokens: int) -> int:
    """What a call of `tokens` tokens, `output_tokens` of them max_tokens, takes from a bucket."""
    if bucket_name == "requests":
        return 1
    if bucket_name == "input_tokens":
        return max(0, tokens - output_tokens)
    if bucket_name == "output_tokens":
        return output_tokens
    return tokens


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

    def lower_to(self, level: float, now: float) -> None:
        """Never above `level` (what the server says remains); never raised by it."""
        self.refill(now)
        if level < self.level:
            self.level = level

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


class Buckets:
    """One endpoint's buckets by name, in the order they were made, sized by one burst."""

    __slots__ = ("_by_name", "burst_s")

    def __init__(self, burst_s: float) -> None:
        self._by_name: dict[str, TokenBucket] = {}
        self.burst_s = burst_s

    def get(self, name: str) -> TokenBucket | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[TokenBucket]:
        return iter(self._by_name.values())

    def set(self, name: str, per_minute: float | None, now: float) -> TokenBucket | None:
        """Make, re-rate or (None) remove the bucket `name`."""
        if per_minute is None:
            self._by_name.pop(name, None)
            return None
        bucket = self._by_name.get(name)
        rate = per_minute / 60.0
        if bucket is None:
            bucket = TokenBucket(name, rate, max(1.0, rate * self.burst_s), now)
            self._by_name[name] = bucket
        else:
            bucket.set_rate(rate, self.burst_s, now)
        return bucket

    def set_burst(self, burst_s: float, now: float) -> None:
        self.burst_s = burst_s
        for bucket in self._by_name.values():
            bucket.set_rate(bucket.rate_per_s, burst_s, now)

    def wait_s(self, tokens: int, output_tokens: int, now: float) -> float:
        """Seconds until every bucket holds what the call takes (0 when they do now)."""
        wait = 0.0
        for bucket in self._by_name.values():
            bucket.refill(now)
            bucket_wait = bucket.wait_s(charge(bucket.name, tokens, output_tokens), now)
            if bucket_wait > wait:
                wait = bucket_wait
        return wait

    def take(self, tokens: int, output_tokens: int) -> None:
        for bucket in self._by_name.values():
            bucket.level -= charge(bucket.name, tokens, output_tokens)

    def refund(self, tokens: int, output_tokens: int) -> None:
        for bucket in self._by_name.values():
            bucket.level = min(
                bucket.capacity,
                bucket.level + charge(bucket.name, tokens, output_tokens),
            )

    def reconcile(
        self, tokens: int, output_tokens: int, prompt_tokens: int, completion_tokens: int
    ) -> bool:
        """Replace a call's estimate (`tokens`, `output_tokens`) by the usage the server reported;
        True when some bucket got tokens back."""
        refunded = False
        actual_total = prompt_tokens + completion_tokens
        for bucket in self._by_name.values():
            if bucket.name == "requests":
                continue
            estimate = charge(bucket.name, tokens, output_tokens)
            actual = charge(bucket.name, actual_total, completion_tokens)
            if actual == estimate:
                continue
            bucket.level = min(bucket.capacity, bucket.level + (estimate - actual))
            refunded = refunded or actual < estimate
        return refunded

    def readings(self, now: float) -> tuple[BucketReading, ...]:
        readings = []
        for bucket in self._by_name.values():
            bucket.refill(now)
            readings.append(
                BucketReading(
                    bucket.name,
                    bucket.rate_per_s * 60.0,
                    bucket.capacity,
                    bucket.level,
                    bucket.fill,
                    bucket.adaptive,
                )
            )
        return tuple(readings)
