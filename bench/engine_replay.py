"""One real `Study` (dispatcher, monitor, policy, budgets) over a recorded task's fixed pool,
against a scorer that reads the recording instead of calling the model (bench helper for
`real_selection.py --engine`): the same rewards the model gave, through the engine's own loop.
"""

from __future__ import annotations

import statistics
from typing import Any

import anyio
import anyio.lowlevel
from recording import RecordedTask

from engine.errors import EndpointError
from engine.propose import UserCandidate
from engine.search import make_policy
from engine.settings import StudyConfig
from engine.study.scoring import Score
from engine.study.shared import StudySetup
from engine.study.study import Study
from engine.task import Splits, Task
from engine.task.types import Example


class RecordedScorer:
    """The reward the model gave `instruction` on `example` in the full evaluation."""

    def __init__(self, task: RecordedTask) -> None:
        self._row = {text: index for index, text in enumerate(task.candidates)}
        self._rewards = task.rewards

    async def score(self, instruction: str, example: Example) -> Score:
        await anyio.lowlevel.checkpoint()
        return Score(float(self._rewards[self._row[instruction], int(example.key)]))


class NoProposals:
    """The pool is fixed: a study of the user's own candidates makes no proposal call."""

    async def propose(self, count: int) -> Any:
        raise EndpointError("this bench makes no proposal call")

    async def vary(self, parent_text: str, parent_id: int, n: int) -> Any:
        raise EndpointError("this bench makes no proposal call")


async def _study(task: RecordedTask, policy: str, seed: int, in_flight: int, epsilon: float) -> Any:
    arms, n = task.rewards.shape
    pool = tuple(Example(f"example {i}", ("",), key=str(i)) for i in range(n))
    config = StudyConfig.of(
        task=task.name,
        policy=policy,
        seed=seed,
        epsilon=epsilon,
        initial_candidates=0,
        variant_rounds=0,
        concurrency=in_flight,
        no_cache=True,
    )
    settings = config.study(user_candidates=arms)
    rewards = "binary" if task.binary else "continuous"
    setup = StudySetup(
        settings=settings,
        task=Task(task.name, pool),
        splits=Splits(demo=pool[:1], scoring=pool, test=()),
        policy=make_policy(
            policy, n=n, seed=seed, epsilon=epsilon, initial_arms=arms, rewards=rewards
        ),
        scorer=RecordedScorer(task),
        proposer=NoProposals(),
        user_candidates=tuple(UserCandidate(text) for text in task.candidates),
    )
    study = Study(setup)
    result = await study.run()
    return result, setup.policy


def engine_study(
    task: RecordedTask, policy: str, seed: int, in_flight: int, epsilon: float
) -> dict[str, Any]:
    """The pick, cost and certificate of one study through the engine."""
    result, engine_policy = anyio.run(_study, task, policy, seed, in_flight, epsilon)
    means = task.rewards.mean(axis=1)
    pick = result.winner_arm
    certificate = engine_policy.certificate()
    return {
        "cost": result.spend.scoring_calls / task.rewards.size,
        "gap": float(means.max() - (means[pick] if pick is not None else 0.0)),
        "proven": certificate.proven if policy in ("paired", "lucb") else None,
        "supported": certificate.supported,
        "reason": result.reason,
        "mean_reward": statistics.fmean(means),
    }
