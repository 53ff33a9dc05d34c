"""The composition as the service uses it: `engine.service` runs studies through a `Launcher`
it is given, so that it never imports the composition above it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from engine.app.execute import LimiterFor, open_study
from engine.app.prepare import Prepared, config_of, prepare
from engine.app.records import open_record
from engine.errors import EngineError
from engine.service.manager import PreparedStudy
from engine.settings import StudyConfig
from engine.study.journal import replay_journal
from engine.study.observers import Observer
from engine.study.record import StudyRecord
from engine.study.study import Study

__all__ = ["Launcher"]


class Launcher:
    """Implements `engine.service.manager.Launcher` with `engine.app`."""

    def prepare(self, config: StudyConfig, *, journals: Path) -> Prepared:
        # the service's own environment (OPENAI_BASE_URL, OPENAI_API_KEY) is the operator's,
        # never a request's: its endpoints come from the operator's named endpoints only
        return prepare(config, journals=journals, environ={})

    def prepare_resume(
        self,
        journal: Path,
        *,
        adjust: Callable[[StudyConfig], Mapping[str, Any]] | None = None,
    ) -> Prepared | None:
        replay = replay_journal(journal)
        if replay.finished is not None and replay.finished.status in ("finished", "failed"):
            return None
        config = config_of(replay)
        changes = dict(adjust(config)) if adjust is not None else {}
        return prepare(config.replace(journal=str(journal), **changes), replay=replay, environ={})

    def read_record(self, journal: Path) -> StudyRecord:
        return open_record(journal)  # a path: no state folder is searched

    def open(
        self,
        prepared: PreparedStudy,
        *,
        observers: Iterable[Observer],
        say: Callable[[str], None],
        limiter_for: LimiterFor,
    ) -> AbstractAsyncContextManager[Study]:
        if not isinstance(prepared, Prepared):
            raise EngineError(f"the launcher opens studies it prepared, not {prepared!r}")
        return open_study(prepared, observers=observers, say=say, limiter_for=limiter_for)
