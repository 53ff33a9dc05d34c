"""What a study is built from (`StudySetup`), and what its running parts share (`Shared`).

`engine.app` builds the setup from a config (clients, the policy of `engine.search`, the
scorer and proposer, prices); tests build one from fakes. The facade (`engine.study.study`),
the dispatcher, the proposal loop, the monitor and the views all work over one `Shared`: the
setup, the state of facts, the live activity, and `emit`, the one way to change the state
(as anyio's memory stream ends share one state object).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.llm.client import LLMClient
from engine.llm.pool.endpoint_pool import EndpointPool
from engine.propose import CandidateSource, UserCandidate
from engine.search.policy import Policy
from engine.study.activity import Activity
from engine.study.budgets import PriceTable
from engine.study.events import Event
from engine.study.scoring import Scorer
from engine.study.settings import StudySettings
from engine.study.state import StudyState
from engine.task.split import Splits
from engine.task.types import Example, Task

__all__ = ["Shared", "StudySetup", "demo_set"]


@dataclass(slots=True)
class StudySetup:
    """The parts of one study. `clients` are its endpoints (their limits and statistics show
    in the snapshot and change with the controls); `pools` group them by role (their health
    shows in the snapshot); `scoring_model` prices scores that do not name their model."""

    settings: StudySettings
    task: Task
    splits: Splits
    policy: Policy
    scorer: Scorer
    proposer: CandidateSource
    clients: tuple[LLMClient, ...] = ()
    pools: tuple[EndpointPool, ...] = ()
    prices: PriceTable = field(default_factory=PriceTable)
    scoring_model: str = ""
    user_candidates: tuple[UserCandidate, ...] = ()  # the user's own, added before proposals
    scoring: dict[str, Any] = field(default_factory=dict)  # how the target is asked (result)
    time_s: Callable[[], float] = time.monotonic
    #: demos a scoring prompt shows (a candidate's own set in the demo search has as many)
    scoring_demos: int = 0


@dataclass(slots=True)
class Shared:
    setup: StudySetup
    state: StudyState
    activity: Activity
    emit: Callable[[Event], None]


def demo_set(shared: Shared, demos: Sequence[int] | None) -> tuple[Example, ...] | None:
    """A candidate's own demos, from their places in the demo pool (None: the study's)."""
    if demos is None:
        return None
    pool = shared.setup.splits.demo
    return tuple(pool[index] for index in demos)
