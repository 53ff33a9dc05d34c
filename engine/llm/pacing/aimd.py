"""Adaptive mode: the search for a request rate the provider does not publish, by AIMD.

AIMD is Jacobson's (1988, "Congestion Avoidance and Control"): a 429 sets the rate just under the
rate the server was accepting; success while the limiter is the bottleneck raises it by a
constant step, after a doubling "slow start". The search moves the rate of the "requests" bucket
in the limiter's `Buckets`; the limiter (limiter.py) pauses and admits.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from engine.llm.pacing.buckets import Buckets, TokenBucket

__all__ = ["AimdSearch", "AimdSettings", "RateMeter"]


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


class RateMeter:
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


class AimdSearch:
    """Where one endpoint's search stands: slow start or not, the additive step, when the rate
    was last cut and last raised, and the rate the server has been accepting."""

    __slots__ = (
        "_accepted_since_cut",
        "_buckets",
        "_last_decrease_at",
        "_last_increase_at",
        "_meter",
        "_slow_start",
        "_step_per_s",
        "settings",
    )

    def __init__(self, settings: AimdSettings, buckets: Buckets) -> None:
        self.settings = settings
        self._buckets = buckets
        self._slow_start = False
        self._step_per_s = 0.0
        self._last_decrease_at = -math.inf
        self._last_increase_at = -math.inf
        self._meter = RateMeter(settings.window_s)
        self._accepted_since_cut = 0

    def start(self, requests_per_minute: float | None, now: float) -> None:
        """Search under the user's limit, from it; without one, from the current rate, or (no
        request bucket yet) from the start rate in slow start."""
        if requests_per_minute is not None:
            bucket = self._buckets.set("requests", requests_per_minute, now)
            self._slow_start = False
        else:
            existing = self._buckets.get("requests")
            start = self.settings.start_requests_per_minute
            bucket = existing or self._buckets.set("requests", start, now)
            self._slow_start = existing is None
        assert bucket is not None
        bucket.adaptive = True
        ceiling = requests_per_minute
        bucket.ceiling_per_s = math.inf if ceiling is None else ceiling / 60.0
        self._step_per_s = bucket.rate_per_s * self.settings.increase_per_s

    def on_success(self, now: float, limiting: bool) -> None:
        """A call succeeded: count it, and climb when the limiter is `limiting` the rate."""
        self._meter.add(now)
        self._accepted_since_cut += 1
        bucket = self._buckets.get("requests")
        elapsed = now - self._last_increase_at
        self._last_increase_at = now
        if bucket is None or not bucket.adaptive or elapsed <= 0 or elapsed == math.inf:
            return
        if not limiting:
            return  # the limiter is not what holds the rate back: do not grow blindly
        if self._slow_start:
            rate = bucket.rate_per_s * 2.0**elapsed
        else:
            rate = bucket.rate_per_s + self._step_per_s * elapsed
        rate = min(rate, bucket.ceiling_per_s)
        if rate != bucket.rate_per_s:
            bucket.set_rate(rate, self._buckets.burst_s, now)

    def on_rate_limited(self, now: float, sent_at: float | None) -> None:
        """A 429: cut the rate, unless the request was sent before the last cut."""
        bucket = self._buckets.get("requests")
        fresh = sent_at is None or sent_at >= self._last_decrease_at
        if bucket is None or not bucket.adaptive or not fresh:
            return
        rate = max(self._cut_rate(bucket, now), self.settings.min_requests_per_minute / 60.0)
        bucket.set_rate(rate, self._buckets.burst_s, now)
        self._step_per_s = rate * self.settings.increase_per_s
        self._last_decrease_at = now
        self._accepted_since_cut = 0

    def _cut_rate(self, bucket: TokenBucket, now: float) -> float:
        accepted = self._meter.rate_per_s(now)
        if accepted <= 0:
            # nothing of ours was accepted lately: the server's bucket was empty before we
            # came (another client, an earlier run), which says nothing about its rate;
            # back off but keep searching fast
            return bucket.rate_per_s * 0.5
        self._slow_start = False
        cut_in_window = now - self._last_decrease_at <= self.settings.window_s
        if bucket.rate_per_s >= accepted and not cut_in_window:
            return accepted * self.settings.decrease
        # refused although already below what was accepted lately: that rate came from the
        # server's stored burst, now spent. Or refused again soon after a cut: the window
        # still holds the rate before it, which that cut has used already, and cutting to it
        # once more per 429 walks down in steps of 5 %. Either way, what the server accepted
        # since our last cut is its real rate: measured when there is half a second of it,
        # else counted since the cut (a storm of 429s right after a cut ends in one more cut,
        # which at most halves the rate); without either, cut the current rate
        since = self._meter.rate_since(self._last_decrease_at, now)
        if 0 < since < bucket.rate_per_s:
            return since * self.settings.decrease
        span = now - self._last_decrease_at
        if since <= 0 and self._accepted_since_cut > 0 and 0 < span <= self.settings.window_s:
            counted = self._accepted_since_cut / max(span, 1e-3)
            if counted < bucket.rate_per_s:
                return max(counted * self.settings.decrease, bucket.rate_per_s * 0.5)
        return bucket.rate_per_s * self.settings.stale_decrease

    def adopt_limit(self, bucket: TokenBucket, rate_per_s: float, now: float) -> bool:
        """The provider reports its request limit: search under it, and drop to it when above it
        or still in slow start. True when the rate changed."""
        bucket.ceiling_per_s = rate_per_s
        if not (self._slow_start or bucket.rate_per_s > rate_per_s):
            return False
        bucket.set_rate(rate_per_s, self._buckets.burst_s, now)
        self._slow_start = False
        self._step_per_s = rate_per_s * self.settings.increase_per_s
        return True
