"""Counters of one endpoint's calls, for the UI, events and benchmarks.

A *call* is one logical request the engine made; an *attempt* is one HTTP request for it (calls
plus retries). Latency samples are kept in a fixed ring (the last 2,048 successful calls), so the
cost does not grow with the length of a study.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["CallStats", "StatsSnapshot"]

_SAMPLES = 2048


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    calls: int
    succeeded: int
    failed: int
    cancelled: int
    attempts: int
    retries: int
    rate_limited: int
    in_flight: int
    errors: dict[str, int] = field(default_factory=dict)  # by error kind, every failed attempt
    final_errors: dict[str, int] = field(default_factory=dict)  # by kind, calls failed for good
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class CallStats:
    """Mutable counters owned by one client."""

    __slots__ = (
        "_latencies",
        "_next",
        "attempts",
        "calls",
        "cancelled",
        "completion_tokens",
        "errors",
        "failed",
        "final_errors",
        "in_flight",
        "prompt_tokens",
        "rate_limited",
        "retries",
        "succeeded",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.succeeded = 0
        self.failed = 0
        self.cancelled = 0
        self.attempts = 0
        self.retries = 0
        self.rate_limited = 0
        self.in_flight = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.errors: Counter[str] = Counter()
        self.final_errors: Counter[str] = Counter()
        self._latencies: list[float] = []
        self._next = 0

    def record_latency(self, seconds: float) -> None:
        if len(self._latencies) < _SAMPLES:
            self._latencies.append(seconds)
        else:
            self._latencies[self._next] = seconds
            self._next = (self._next + 1) % _SAMPLES

    def snapshot(self) -> StatsSnapshot:
        ordered = sorted(self._latencies)
        return StatsSnapshot(
            calls=self.calls,
            succeeded=self.succeeded,
            failed=self.failed,
            cancelled=self.cancelled,
            attempts=self.attempts,
            retries=self.retries,
            rate_limited=self.rate_limited,
            in_flight=self.in_flight,
            errors=dict(self.errors),
            final_errors=dict(self.final_errors),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            latency_p50_s=_quantile(ordered, 0.5),
            latency_p95_s=_quantile(ordered, 0.95),
        )
