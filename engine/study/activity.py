"""What is going on in a running study right now: not facts (nothing here is journaled), the
live machinery the dispatcher, the proposal loop and the monitor share.

Concurrency is one live number: the `anyio.CapacityLimiter` the study's scoring and
final-evaluation calls hold a slot of while they are in flight (proposal calls, a few at a time,
go beside them); changing it is setting ``capacity.total_tokens``. The send gate takes back calls queued at the rate limiter while
the study is paused. Parts that wait for something to change wait on `changed`, which every
change sets (wake, don't poll).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import anyio

from engine.llm.pacing.gate import SendGate

__all__ = ["Activity", "CallRate"]


class CallRate:
    """Completed calls per second over a short window (for calls/s and the sparkline)."""

    def __init__(self, time_s: Callable[[], float]) -> None:
        self._time_s = time_s
        self._times: deque[float] = deque(maxlen=20_000)

    def add(self) -> None:
        self._times.append(self._time_s())

    def rate(self, window_s: float = 5.0) -> float:
        now = self._time_s()
        recent = sum(1 for t in self._times if t >= now - window_s)
        return recent / window_s

    def per_second(self, seconds: int = 30) -> tuple[float, ...]:
        now = self._time_s()
        buckets = [0.0] * seconds
        for t in self._times:
            age = int(now - t)
            if 0 <= age < seconds:
                buckets[seconds - 1 - age] += 1
        return tuple(buckets)


class Activity:
    """The running study's live counters, slots and signals."""

    def __init__(self, concurrency: int, *, time_s: Callable[[], float] = time.monotonic) -> None:
        self.time_s = time_s
        self.capacity = anyio.CapacityLimiter(concurrency)
        self.gate = SendGate()  # shut while paused: calls not yet sent come back
        self.scoring_in_flight = 0
        self.proposals_in_flight = 0
        self.initial_done = False  # the first batch of candidates is in
        self.proposer_idle = False  # no more proposals will come
        self.pulls_at_last_round = 0
        self.round_in_flight = False  # a variant round's proposal calls are not all back
        self.stop_requested = False
        self.start_paused = False  # paused before it ran (a service restarting a paused study)
        self.message = ""
        self.started_at: float | None = None  # when this run began (None: not yet)
        self.seconds_before = 0.0  # running time of earlier runs of a resumed study
        self.calls = CallRate(time_s)
        self.evaluation_done = 0
        self.evaluation_total = 0
        self.changed = anyio.Event()

    @property
    def concurrency(self) -> int:
        return int(self.capacity.total_tokens)

    @property
    def in_flight(self) -> int:
        return self.scoring_in_flight + self.proposals_in_flight

    def seconds(self) -> float:
        """The study's running time, across resumes."""
        if self.started_at is None:
            return self.seconds_before
        return self.seconds_before + (self.time_s() - self.started_at)

    def notify(self) -> None:
        """Something changed: wake every part waiting on `changed`."""
        self.changed.set()
        self.changed = anyio.Event()
