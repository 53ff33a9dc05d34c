"""What the service needs from the composition: a `Launcher` that prepares and opens studies.

The service sits below the composition (`engine.app`), so it names what it calls here and is
given an implementation: `engine.app.launcher.Launcher` in `ape-engine serve`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from engine.llm.endpoint import EndpointConfig
from engine.llm.pacing.limiter import RateLimiter
from engine.settings import StudyConfig
from engine.study.journal import Replay
from engine.study.locks import FileLock
from engine.study.observers import Observer
from engine.study.record import StudyRecord
from engine.study.study import Study

__all__ = ["Launcher", "PreparedStudy"]


class PreparedStudy(Protocol):
    """A study checked and ready to open (`engine.app.prepare.Prepared`)."""

    study_id: str
    config: StudyConfig
    journal_path: Path
    replay: Replay | None
    #: the journal's lock when the service took it before reading the journal (a resume); the
    #: study takes it as it opens otherwise, and lets go of it when it closes
    lock: FileLock | None

    @property
    def task_name(self) -> str: ...

    @property
    def scoring_pool(self) -> int: ...

    @property
    def worst_case(self) -> tuple[float, int, str]:
        """The study's worst case before it starts: memory in MB, calls, and what multiplies
        (``200 candidates x 200 scoring examples``)."""
        ...

    @property
    def task_warnings(self) -> tuple[str, ...]:
        """What the task's loader noticed but accepted (repeated examples)."""
        ...


class Launcher(Protocol):
    """What the service needs from the composition."""

    def prepare(self, config: StudyConfig, *, journals: Path) -> PreparedStudy:
        """Check a new study (task, pools, prices, ...) before any call; its journal goes in
        `journals`. Raises `EngineError` naming the setting."""
        ...

    def prepare_resume(
        self,
        journal: Path,
        *,
        adjust: Callable[[StudyConfig], Mapping[str, Any]] | None = None,
    ) -> PreparedStudy | None:
        """A study read back from its journal, or None when it ended (finished or failed);
        `adjust(config)` gives the settings that change on resume (the operator's endpoints as
        they are now, the concurrency within today's cap)."""
        ...

    def read_record(self, journal: Path) -> StudyRecord:
        """The study of `journal` read back (`engine.study.record`), its answer rows with the
        examples' inputs and expected outputs when its task loads as it was. Called on a worker
        thread (it replays the whole journal); raises `EngineError` for a journal it cannot
        read."""
        ...

    def open(
        self,
        prepared: PreparedStudy,
        *,
        observers: Iterable[Observer],
        say: Callable[[str], None],
        limiter_for: Callable[[EndpointConfig], RateLimiter | None],
    ) -> AbstractAsyncContextManager[Study]:
        """The study, its endpoints open, ready to run; closed when the block ends."""
        ...
