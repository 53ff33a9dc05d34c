"""The study's scheduling policy, built from its settings.

One place builds it for the live study (`engine.app.execute`) and for a journal read back
(`engine.study.record`), so the bounds a report shows are those the study ran with: the same
policy, pool size, seed, delta and epsilon, error probability shared among the same planned
candidates, and the same kind of rewards (docs/design.md, "Scheduler").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from engine.search import make_policy
from engine.search.policy import BasePolicy
from engine.study.config import StudyConfig
from engine.study.events import CandidateAdded, Event
from engine.study.settings import StudySettings
from engine.task import BINARY_METRICS

__all__ = ["reward_kind", "study_policy", "study_settings", "user_candidates_in"]


def reward_kind(config: StudyConfig, metric: str) -> str:
    """The scheduler's reward kind: binary when every reward is right or wrong (execution
    accuracy with a 0/1 metric, no custom scorer), continuous otherwise (log-probability, F1,
    a custom scorer)."""
    binary = config.scoring == "exec" and not config.scorer and metric in BINARY_METRICS
    return "binary" if binary else "continuous"


def study_settings(config: StudyConfig, user_candidates: int) -> StudySettings:
    """The study's settings, counting the user's own candidates in its plan."""
    settings = config.study_settings()
    plan = dataclasses.replace(settings.proposals, user_candidates=user_candidates)
    return dataclasses.replace(settings, proposals=plan)


def study_policy(config: StudyConfig, *, n: int, metric: str, user_candidates: int) -> BasePolicy:
    """The policy over a scoring pool of `n` examples for a task scored by `metric`."""
    return make_policy(
        config.policy,
        n=n,
        seed=config.seed,
        delta=config.delta,
        epsilon=config.epsilon,
        initial_arms=study_settings(config, user_candidates).proposals.planned(),
        rewards=reward_kind(config, metric),
    )


def user_candidates_in(events: Iterable[Event]) -> int:
    """The user's own candidates a journal holds: a resumed study plans with them as the first
    run did, though it does not read their file again."""
    return sum(isinstance(event, CandidateAdded) and event.origin == "user" for event in events)
