"""A config becomes a running study: the task and its pools, the endpoints (or the in-process
simulator or local model), the policy, scorer, proposer, response cache and journal.

Programmatic use::

    from engine.app import StudyConfig, run_study
    result = anyio.run(run_study, StudyConfig(task="sum", budget_scoring_calls=2000))
    print(result.winner.instruction, result.winner.test_score, result.winner.test_ci)

`prepare(config)` checks everything before a call; `execute(prepared, ...)` runs it.
"""

from engine.app.execute import execute, open_study, run_study
from engine.app.prepare import Prepared, prepare, prepare_resume
from engine.study.config import StudyConfig, load_config_file

__all__ = [
    "Prepared",
    "StudyConfig",
    "execute",
    "load_config_file",
    "open_study",
    "prepare",
    "prepare_resume",
    "run_study",
]
