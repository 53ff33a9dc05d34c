"""The study's scheduling policy, built from its settings.

One place builds it for the live study (`engine.app.execute`) and for a journal read back
(`engine.study.record`), so the bounds a report shows are those the study ran with: the same
policy, pool size, seed, delta and epsilon, error probability shared among the same planned
candidates, and the same kind of rewards (docs/design.md, "Scheduler").
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.search import make_policy
from engine.search.policy import BasePolicy
from engine.study.events import CandidateAdded, Event
from engine.study.settings import StudySettings
from engine.task import BINARY_METRICS

__all__ = ["reward_kind", "study_policy", "user_candidates_in"]


def reward_kind(scoring: str, metric: str, *, custom: bool) -> str:
    """The scheduler's reward kind: binary when every reward is right or wrong (execution
    accuracy with a 0/1 metric, no `custom` scorer), continuous otherwise (log-probability,
    F1, a custom scorer)."""
    binary = scoring == "exec" and not custom and metric in BINARY_METRICS
    return "binary" if binary else "continuous"


def study_policy(settings: StudySettings, *, n: int, rewards: str) -> BasePolicy:
    """The policy over a scoring pool of `n` examples with `rewards` (`reward_kind`)."""
    search = settings.search
    return make_policy(
        search.policy,
        n=n,
        seed=search.seed,
        delta=search.delta,
        epsilon=search.epsilon,
        initial_arms=settings.proposals.planned(settings.user_candidates),
        rewards=rewards,
    )


def user_candidates_in(events: Iterable[Event]) -> int:
    """The user's own candidates a journal holds: a resumed study plans with them as the first
    run did, though it does not read their file again."""
    return sum(isinstance(event, CandidateAdded) and event.origin == "user" for event in events)
