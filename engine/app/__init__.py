"""A config becomes a running study: the task and its pools, the endpoints (or the in-process
simulator or local model), the policy, scorer, proposer, response cache and journal.

Programmatic use (`engine.app.api`)::

    from engine.app import Endpoint, optimize
    result = optimize(examples, target=Endpoint("gpt-4o-mini"), metric=my_metric, budget_usd=1)
    print(result.winner.instruction, result.winner.test_score, result.winner.test_ci)

`optimize_async` is the same for code with an event loop; `prepare(config)` checks everything
before a call, `execute(prepared, ...)` runs it, `open_study` hands over the `Study` itself.
"""

from engine.app.api import Endpoint, optimize, optimize_async
from engine.app.execute import execute, open_study, run_study
from engine.app.prepare import Prepared, prepare, prepare_resume
from engine.settings import StudyConfig, load_config_file

__all__ = [
    "Endpoint",
    "Prepared",
    "StudyConfig",
    "execute",
    "load_config_file",
    "open_study",
    "optimize",
    "optimize_async",
    "prepare",
    "prepare_resume",
    "run_study",
]
