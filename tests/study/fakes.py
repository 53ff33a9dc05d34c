"""Fakes for the study's seams: a round-robin policy, a scripted scorer and proposer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from engine.llm.errors import ServerError
from engine.propose import Evidence, Parent, Proposal, ProposalBatch
from engine.search import Certificate
from engine.study.scoring import Score
from engine.task.types import Example


@dataclass(frozen=True, slots=True)
class FakePull:
    arm: int
    example: int


@dataclass(frozen=True, slots=True)
class FakeStats:
    mean: float
    count: int
    pending: int
    lower: float
    upper: float
    state: str

    @property
    def estimate(self) -> float:
        return self.mean


class FakePolicy:
    """Pulls the least-pulled arm next, examples in order without replacement; done when every
    arm has `stop_after` observations. Hard finite-population bounds."""

    def __init__(self, n: int, stop_after: int | None = None) -> None:
        self.n = n
        self.stop_after = n if stop_after is None else stop_after
        self.sums: list[float] = []
        self.counts: list[int] = []
        self.pending: list[int] = []
        self.next_example: list[int] = []
        self.returned: list[list[int]] = []
        self.dropped: set[int] = set()
        self.budget: int | None = None
        self.observed: list[tuple[int, int, float]] = []
        self.cancelled: list[FakePull] = []
        self.out: set[tuple[int, int]] = set()  # pulls handed out and not yet back
        self.pulls_used = 0

    def add_arm(self) -> int:
        self.sums.append(0.0)
        self.counts.append(0)
        self.pending.append(0)
        self.next_example.append(0)
        self.returned.append([])
        return len(self.sums) - 1

    def _open(self, arm: int) -> bool:
        return arm not in self.dropped and self.counts[arm] + self.pending[arm] < self.stop_after

    def _allowance(self) -> int | None:
        if self.budget is None:
            return None
        return self.budget - self.pulls_used - sum(self.pending)

    def select(self, k: int) -> list[FakePull]:
        pulls = []
        allowance = self._allowance()
        if allowance is not None:
            k = min(k, allowance)
        for _ in range(k):
            candidates = [a for a in range(len(self.sums)) if self._open(a)]
            if not candidates:
                break
            arm = min(candidates, key=lambda a: (self.counts[a] + self.pending[a], a))
            if self.returned[arm]:
                example = self.returned[arm].pop()
            else:
                example = self.next_example[arm]
                self.next_example[arm] += 1
            self.pending[arm] += 1
            self.out.add((arm, example))
            pulls.append(FakePull(arm, example))
        return pulls

    def open_pulls(self) -> int:
        allowance = self._allowance()
        if allowance is not None and allowance <= 0:
            return 0
        return sum(
            self.stop_after - self.counts[a] - self.pending[a]
            for a in range(len(self.sums))
            if self._open(a)
        )

    def observe(self, pull: FakePull, reward: float) -> None:
        """A pull handed out came back, or one replayed from a journal."""
        if (pull.arm, pull.example) in self.out:
            self.out.discard((pull.arm, pull.example))
            self.pending[pull.arm] -= 1
        self._record(pull.arm, pull.example, reward)

    def cancel(self, pull: FakePull) -> None:
        self.out.discard((pull.arm, pull.example))
        self.pending[pull.arm] -= 1
        self.returned[pull.arm].append(pull.example)
        self.cancelled.append(pull)

    def _record(self, arm: int, example: int, reward: float) -> None:
        self.sums[arm] += reward
        self.counts[arm] += 1
        self.pulls_used += 1
        self.next_example[arm] = max(self.next_example[arm], example + 1)
        self.observed.append((arm, example, reward))

    def drop(self, arm: int) -> None:
        self.dropped.add(arm)

    def set_budget(self, n: int | None) -> None:
        self.budget = n

    def stats(self, arm: int) -> FakeStats:
        m = self.counts[arm]
        s = self.sums[arm]
        mean = s / m if m else 0.0
        return FakeStats(
            mean, m, self.pending[arm], s / self.n, (s + self.n - m) / self.n, "active"
        )

    def recommendation(self) -> int | None:
        pulled = [a for a in range(len(self.sums)) if self.counts[a] and a not in self.dropped]
        if not pulled:
            return None
        return max(pulled, key=lambda a: (self.sums[a] / self.counts[a], -a))

    def certificate(self) -> Certificate:
        """Proven once every open arm is done (the fake's stopping rule), else nothing known."""
        arm = self.recommendation()
        proven = arm is not None and not any(self._open(a) for a in range(len(self.sums)))
        return Certificate(arm, proven, 0.0 if proven else 1.0, 0.01, 0.05, 0)

    def budget_exhausted(self) -> bool:
        return self.budget is not None and self.pulls_used >= self.budget

    def done(self) -> bool:
        if self.budget_exhausted():
            return True
        return bool(self.sums) and not any(self._open(a) for a in range(len(self.sums)))


class FakeScorer:
    """Reward = 1 when the example index is below quality x 100 (quality from the text's last
    word: 'q70' -> 0.7). Tracks the most calls in flight; can fail chosen calls."""

    def __init__(self, *, fail_every: int = 0, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_every = fail_every
        self.delay_s = delay_s

    async def score(self, instruction: str, example: Example) -> Score:
        self.calls += 1
        call = self.calls
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.delay_s)
            if self.fail_every and call % self.fail_every == 0:
                raise ServerError(f"scripted failure of call {call}", status=500, retryable=True)
            quality = int(instruction.rsplit("q", 1)[1]) / 100
            index = int(example.key)
            # spread the correct answers over the pool: index i is right when frac(i * phi) < q
            reward = 1.0 if (index * 0.6180339887) % 1.0 < quality else 0.0
            return Score(reward, prompt_tokens=20, completion_tokens=2, latency_s=self.delay_s)
        finally:
            self.in_flight -= 1


class FakeProposer:
    """Hands out 'instruction qNN' texts from a list; variants add 1 to their parent's quality,
    reflections 2 (their evidence kept in `shown`), merges take the better parent's. A round's
    calls take `delay_s` each; `max_in_flight` is the most of them at once."""

    def __init__(self, qualities: list[int], *, delay_s: float = 0.0) -> None:
        self.qualities = list(qualities)
        self.calls = 0
        self.vary_calls = 0
        self.delay_s = delay_s
        self.in_flight = 0
        self.max_in_flight = 0
        self.shown: list[tuple[str, tuple[Evidence, ...]]] = []

    async def _wait(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1

    async def reflect(self, parent: Parent, evidence: Sequence[Evidence], n: int) -> ProposalBatch:
        await self._wait()
        self.shown.append(("reflect", tuple(evidence)))
        quality = int(parent.instruction.rsplit("q", 1)[1])
        proposals = tuple(
            Proposal(f"revision {len(self.shown)}.{i} of {parent.arm} q{min(99, quality + 2)}",
                     "reflect", (parent.arm,))
            for i in range(n)
        )  # fmt: skip
        return ProposalBatch(proposals, calls=1, generated=n, kind="reflect")

    async def merge(
        self,
        first: Parent,
        second: Parent,
        first_only: Sequence[Evidence],
        second_only: Sequence[Evidence],
        n: int,
    ) -> ProposalBatch:
        await self._wait()
        self.shown.append(("merge", (*first_only, *second_only)))
        quality = max(int(p.instruction.rsplit("q", 1)[1]) for p in (first, second))
        proposals = tuple(
            Proposal(f"merge {len(self.shown)}.{i} q{quality}", "merge", (first.arm, second.arm))
            for i in range(n)
        )
        return ProposalBatch(proposals, calls=1, generated=n, kind="merge")

    async def propose(self, count: int) -> ProposalBatch:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        taken, self.qualities = self.qualities[:count], self.qualities[count:]
        proposals = tuple(
            Proposal(f"instruction {i} q{q}", "initial")
            for i, q in enumerate(taken, self.calls * 100)
        )
        return ProposalBatch(
            proposals, calls=1, prompt_tokens=100, completion_tokens=30, generated=len(taken)
        )

    async def vary(self, parent_text: str, parent_id: int, n: int) -> ProposalBatch:
        self.vary_calls += 1
        await self._wait()
        quality = int(parent_text.rsplit("q", 1)[1])
        proposals = tuple(
            Proposal(
                f"variant {self.vary_calls}.{i} of {parent_id} q{min(99, quality + i)}",
                "resample",
                (parent_id,),
            )
            for i in range(n)
        )
        return ProposalBatch(
            proposals, calls=1, prompt_tokens=50, completion_tokens=20, generated=n
        )


def pool(size: int) -> tuple[Example, ...]:
    return tuple(Example(f"x{i}", (f"y{i}",), key=str(i)) for i in range(size))
