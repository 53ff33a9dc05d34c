"""The final evaluation: chosen instructions re-scored on the held-out test pool.

The running mean of the winner is biased upwards (it won because it was lucky as well as good:
the winner's curse), so the report gives its score on examples the search never saw, beside the
runner-up and the task's human instruction, each with a 95 % interval (`engine.study.intervals`).
Calls run through the same scorer as the search, at most `concurrency` at a time; a call that
fails for good is left out of the score and counted in `failed`, never scored as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from engine.errors import EndpointError
from engine.study.interfaces import Score, ScorerLike
from engine.study.intervals import mean_interval
from engine.task.types import Example

__all__ = ["Evaluation", "evaluate_instructions"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    role: str  # "winner", "runner_up" or "human"
    instruction: str
    test_score: float
    test_ci: tuple[float, float]
    n: int
    failed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "test_score": round(self.test_score, 6),
            "test_ci": [round(self.test_ci[0], 6), round(self.test_ci[1], 6)],
            "n": self.n,
            "failed": self.failed,
        }


async def evaluate_instructions(
    targets: Sequence[tuple[str, str]],
    examples: Sequence[Example],
    scorer: ScorerLike,
    *,
    concurrency: int,
    on_score: Callable[[Score], None] | None = None,
) -> tuple[Evaluation, ...]:
    """Score every (role, instruction) on every example; returns one `Evaluation` per target."""
    rewards: list[list[float]] = [[] for _ in targets]
    failed = [0] * len(targets)
    jobs = [(t, e) for t in range(len(targets)) for e in range(len(examples))]
    send, receive = anyio.create_memory_object_stream[tuple[int, int]](len(jobs) or 1)
    for job in jobs:
        send.send_nowait(job)
    send.close()

    async def worker() -> None:
        async for target, example in receive.clone():
            try:
                score = await scorer.score(targets[target][1], examples[example])
            except EndpointError:
                failed[target] += 1
                continue
            rewards[target].append(min(1.0, max(0.0, float(score.reward))))
            if on_score is not None:
                on_score(score)

    async with anyio.create_task_group() as group:
        for _ in range(max(1, min(concurrency, len(jobs)))):
            group.start_soon(worker)
    receive.close()
    results = []
    for index, (role, instruction) in enumerate(targets):
        mean, interval = mean_interval(rewards[index])
        results.append(
            Evaluation(role, instruction, mean, interval, len(rewards[index]), failed[index])
        )
    return tuple(results)
