"""The study: proposals, scoring with a bandit policy, budgets, events, journal and resume.

`Study` (a `StudyControl`) is the running study that the UI and the service drive;
`engine.app` assembles one from a config.
"""

from engine.study.budgets import BUDGET_NAMES, Budgets, Price, PriceTable, Spend
from engine.study.evaluation import Evaluation
from engine.study.events import (
    ArmEliminated,
    BudgetChanged,
    CandidateAdded,
    ErrorEvent,
    Event,
    EventBus,
    LeaderChanged,
    PullDone,
    StudyFinished,
    Subscription,
)
from engine.study.journal import replay_journal
from engine.study.parts import StudyParts, UiHook
from engine.study.result import CandidateResult, StudyResult
from engine.study.snapshot import StudyControl, StudySnapshot
from engine.study.study import Study

__all__ = [
    "BUDGET_NAMES",
    "ArmEliminated",
    "BudgetChanged",
    "Budgets",
    "CandidateAdded",
    "CandidateResult",
    "ErrorEvent",
    "Evaluation",
    "Event",
    "EventBus",
    "LeaderChanged",
    "Price",
    "PriceTable",
    "PullDone",
    "Spend",
    "Study",
    "StudyControl",
    "StudyFinished",
    "StudyParts",
    "StudyResult",
    "StudySnapshot",
    "Subscription",
    "UiHook",
    "replay_journal",
]
