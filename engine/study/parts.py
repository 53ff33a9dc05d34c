"""The seams a study is wired from: its parts, the journal and UI hooks, restored state.

`engine.app.execute` builds real `StudyParts` (client-backed scorer and proposer, a policy from
`engine.search`, the journal recorder); tests build fakes. Nothing here runs anything.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.llm.client import LLMClient
from engine.study.budgets import PriceTable, Spend
from engine.study.interfaces import PolicyLike, ProposerLike, ScorerLike
from engine.study.snapshot import StudyControl, StudySnapshot
from engine.task.split import Splits
from engine.task.types import Task

__all__ = ["Arm", "CallRate", "Recorder", "RestoredState", "StudyParts", "UiHook"]


@dataclass(slots=True)
class Arm:
    index: int
    instruction: str
    origin: str
    parent: int | None = None


class Recorder(Protocol):
    """Where the study writes what must survive a crash (the journal adapter)."""

    def candidate(self, arm: int, instruction: str, origin: str, parent: int | None) -> None: ...

    def observation(
        self,
        arm: int,
        example: int,
        reward: float,
        prompt_tokens: int,
        completion_tokens: int,
        usd: float,
        latency_s: float,
        cached: bool,
    ) -> None: ...

    def proposals(self, calls: int, tokens: int, usd: float, cached_calls: int) -> None: ...

    def variant_round(self, number: int) -> None: ...

    def budget(self, name: str, limit: float | None) -> None: ...

    def drop(self, arm: int) -> None: ...

    def failure(self, kind: str, message: str) -> None: ...

    def progress(self, spend: Spend) -> None: ...

    def result(self, result: dict[str, Any]) -> None: ...


class UiHook(Protocol):
    """An optional live consumer of snapshots (the terminal UI or a progress bar): `attach` is
    called once with the study (its `StudyControl`), then `update` about ten times a second."""

    def attach(self, control: StudyControl) -> None: ...

    def update(self, snapshot: StudySnapshot) -> None: ...


@dataclass(slots=True)
class RestoredState:
    """What replaying a journal gives back: candidates in arm order, observations, spend."""

    arms: list[Arm] = field(default_factory=list)
    observations: list[tuple[int, int, float]] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    spend: Spend = field(default_factory=Spend)
    variant_rounds_done: int = 0
    budgets: dict[str, float | None] = field(default_factory=dict)


@dataclass(slots=True)
class StudyParts:
    """The parts a study is wired from (real ones by `engine.app.execute`, fakes in tests)."""

    task: Task
    splits: Splits
    policy: PolicyLike
    scorer: ScorerLike
    proposer: ProposerLike
    scoring_model: str = ""
    recorder: Recorder | None = None
    clients: tuple[LLMClient, ...] = ()
    prices: PriceTable = field(default_factory=PriceTable)
    restored: RestoredState | None = None
    time_s: Callable[[], float] = time.monotonic


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
