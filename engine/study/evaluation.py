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
from engine.study.shared import Shared, demo_set
from engine.study.state import prompt_key

__all__ = ["Evaluation", "FinalEvaluation", "Role", "Target"]

Role = Literal["winner", "runner_up", "human", "baseline"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    role: str  # "winner", "runner_up", "human" or "baseline" (the gate's)
    instruction: str
    test_score: float
    test_ci: tuple[float, float]
    n: int
    failed: int = 0
    #: the candidate's own demos (input, output), when it has them (the demo search)
    demos: tuple[tuple[str, str], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "instruction": self.instruction,
            "test_score": round(self.test_score, 6),
            "test_ci": [round(self.test_ci[0], 6), round(self.test_ci[1], 6)],
            "n": self.n,
            "failed": self.failed,
        }
        if self.demos is not None:
            data["demos"] = [{"input": x, "output": y} for x, y in self.demos]
        return data


@dataclass(frozen=True, slots=True)
class Target:
    """An instruction to evaluate, in its role, with its candidate's own demos if any."""

    role: Role
    instruction: str
    demos: tuple[int, ...] | None = None

    @property
    def key(self) -> str:
        return prompt_key(self.instruction, self.demos)


class FinalEvaluation:
    """Scores `targets` on every test example not scored yet."""

    def __init__(self, shared: Shared, targets: list[Target]) -> None:
        self._shared = shared
        self.targets = targets
        self.failed: dict[str, int] = {}
        examples = len(shared.setup.splits.test)
        evaluated = shared.state.evaluated
        # one call per (prompt, example): the winner may be the human instruction itself
        jobs: dict[tuple[str, int], Target] = {}
        for target in targets:
            for index in range(examples):
                if index not in evaluated.get(target.key, {}):
                    jobs.setdefault((target.key, index), target)
        self.jobs = [(target, index) for (_, index), target in jobs.items()]

    async def run(self) -> tuple[Evaluation, ...]:
        activity = self._shared.activity
        activity.evaluation_total = len(self.jobs)
        async with anyio.create_task_group() as group:
            for job in self.jobs:
                slot = object()
                await activity.capacity.acquire_on_behalf_of(slot)  # the concurrency bounds it
                group.start_soon(self._score, slot, *job)
        return self.evaluations()

    async def _score(self, slot: object, target: Target, index: int) -> None:
        shared = self._shared
        setup = shared.setup
        example, demos = setup.splits.test[index], demo_set(shared, target.demos)
        try:
            score = await (
                setup.scorer.score(target.instruction, example)
                if demos is None
                else setup.scorer.score(target.instruction, example, demos)
            )
        except EndpointError:
            self.failed[target.key] = self.failed.get(target.key, 0) + 1
            return
        finally:
            shared.activity.capacity.release_on_behalf_of(slot)
        shared.emit(
            EvaluationDone(
                role=target.role,
                instruction=target.instruction,
                demos=list(target.demos) if target.demos is not None else None,
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
        for target in self.targets:
            rewards = list(self._shared.state.evaluated.get(target.key, {}).values())
            mean, interval = mean_interval(rewards)
            failed = self.failed.get(target.key, 0)
            demos = demo_set(self._shared, target.demos)
            shown = tuple((d.input, d.outputs[0]) for d in demos) if demos is not None else None
            results.append(
                Evaluation(
                    target.role, target.instruction, mean, interval, len(rewards), failed, shown
                )
            )
        return tuple(results)
