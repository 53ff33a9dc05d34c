"""The study: proposals, scoring with a bandit policy, budgets, events, journal and resume.

`Study` (a `StudyControl`) is the running study that the UI and the service drive; it is built
from a `StudySetup` (`engine.app` assembles one from a config). Its facts are the events of
`engine.study.events`, applied to a `StudyState` and written to the journal.
"""

from engine.study.budgets import Budgets, Price, PriceTable, Spend
from engine.study.evaluation import Evaluation
from engine.study.events import Event
from engine.study.journal import JournalWriter, Replay, replay_journal
from engine.study.observers import EventBus, Observer, Subscription
from engine.study.result import StudyResult
from engine.study.settings import BUDGET_NAMES, StudySettings
from engine.study.shared import StudySetup
from engine.study.snapshot import ArmRow, StudyControl, StudySnapshot
from engine.study.state import StudyState
from engine.study.study import Study

__all__ = [
    "BUDGET_NAMES",
    "ArmRow",
    "Budgets",
    "Evaluation",
    "Event",
    "EventBus",
    "JournalWriter",
    "Observer",
    "Price",
    "PriceTable",
    "Replay",
    "Spend",
    "Study",
    "StudyControl",
    "StudyResult",
    "StudySettings",
    "StudySetup",
    "StudySnapshot",
    "StudyState",
    "Subscription",
    "replay_journal",
]
