"""The final evaluation: chosen instructions re-scored on the held-out test pool.

The running mean of the winner is biased upwards (it won because it was lucky as well as good:
the winner's curse), so the report gives its score on examples the search never saw, beside the
runner-up and the task's human instruction, each with a 95 % interval (`engine.study.intervals`).
Calls run through the same scorer as the search, each holding a slot of the study's concurrency.
Every answer is an `EvaluationDone` event, so a study stopped during its evaluation and resumed
pays only for the examples not yet scored. A call that fails for good is left out of the score
and counted in `failed`, never scored as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import anyio

from engine.errors import EndpointError
from engine.study.events import NOTE_CHARS, EvaluationDone
from engine.study.intervals import mean_interval
from engine.study.shared import Shared

__all__ = ["Evaluation", "FinalEvaluation", "Role"]

Role = Literal["winner", "runner_up", "human", "baseline"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    role: str  # "winner", "runner_up", "human" or "baseline" (the gate's)
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


class FinalEvaluation:
    """Scores `targets` ((role, instruction) pairs) on every test example not scored yet."""

    def __init__(self, shared: Shared, targets: list[tuple[Role, str]]) -> None:
        self._shared = shared
        self.targets = targets
        self.failed: dict[str, int] = {}
        examples = len(shared.setup.splits.test)
        evaluated = shared.state.evaluated
        # one call per (instruction, example): the winner may be the human instruction itself
        jobs: dict[tuple[str, int], Role] = {}
        for role, instruction in targets:
            for index in range(examples):
                if index not in evaluated.get(instruction, {}):
                    jobs.setdefault((instruction, index), role)
        self.jobs = [(role, instruction, index) for (instruction, index), role in jobs.items()]

    async def run(self) -> tuple[Evaluation, ...]:
        activity = self._shared.activity
        activity.evaluation_total = len(self.jobs)
        async with anyio.create_task_group() as group:
            for job in self.jobs:
                slot = object()
                await activity.capacity.acquire_on_behalf_of(slot)  # the concurrency bounds it
                group.start_soon(self._score, slot, *job)
        return self.evaluations()

    async def _score(self, slot: object, role: Role, instruction: str, index: int) -> None:
        shared = self._shared
        setup = shared.setup
        try:
            score = await setup.scorer.score(instruction, setup.splits.test[index])
        except EndpointError:
            self.failed[instruction] = self.failed.get(instruction, 0) + 1
            return
        finally:
            shared.activity.capacity.release_on_behalf_of(slot)
        shared.emit(
            EvaluationDone(
                role=role,
                instruction=instruction,
                example=index,
                reward=min(1.0, max(0.0, float(score.reward))),
                prompt_tokens=score.prompt_tokens,
                completion_tokens=score.completion_tokens,
                usd=score.usd(setup.prices, setup.scoring_model),
                cached=score.cached,
                answer=score.answer[: self._shared.setup.settings.answer_chars],
                note=score.note[:NOTE_CHARS],
            )
        )
        shared.activity.evaluation_done += 1
        shared.activity.message = (
            f"evaluating the winner on the test pool: {shared.activity.evaluation_done} of "
            f"{shared.activity.evaluation_total} calls"
        )

    def evaluations(self) -> tuple[Evaluation, ...]:
        results = []
        for role, instruction in self.targets:
            rewards = list(self._shared.state.evaluated.get(instruction, {}).values())
            mean, interval = mean_interval(rewards)
            failed = self.failed.get(instruction, 0)
            results.append(Evaluation(role, instruction, mean, interval, len(rewards), failed))
        return tuple(results)
