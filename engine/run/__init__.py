"""The study: proposals, scoring with a bandit policy, budgets, events, journal and resume.

Programmatic use::

    from engine.run import StudyConfig, run_study
    result = anyio.run(run_study, StudyConfig(task="sum", budget_calls=2000))
    print(result.winner.instruction, result.winner.test_score, result.winner.test_ci)

`prepare(config)` checks everything before a call; `execute(prepared, ui=..., events=...)` runs
it; `Study` (a `StudyControl`) is the running study that the UI and the service drive.
"""

from engine.run.budgets import BUDGET_NAMES, Budgets, Price, PriceTable, Spend
from engine.run.config import POLICIES, StudyConfig, load_config_file
from engine.run.evaluation import Evaluation
from engine.run.events import (
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
from engine.run.parts import StudyParts, UiHook
from engine.run.recording import replay_journal
from engine.run.result import CandidateResult, StudyResult
from engine.run.snapshot import StudyControl, StudySnapshot
from engine.run.study import Study
from engine.run.wiring import Prepared, execute, prepare, run_study

__all__ = [
    "BUDGET_NAMES",
    "POLICIES",
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
    "Prepared",
    "Price",
    "PriceTable",
    "PullDone",
    "Spend",
    "Study",
    "StudyConfig",
    "StudyControl",
    "StudyFinished",
    "StudyParts",
    "StudyResult",
    "StudySnapshot",
    "Subscription",
    "UiHook",
    "execute",
    "load_config_file",
    "prepare",
    "replay_journal",
    "run_study",
]
