"""The service's state directory: its studies' journals, inline tasks, and one small record per
study that says whether the service should resume it when it starts.

Layout under ``--state-dir`` (default ``.ape``)::

    journals/<task>-<id>.jsonl      each study's journal (engine.study.journal)
    tasks/<name>-<hash>/task.json   tasks given inline, so a resumed study finds its task
    cache.sqlite3                   the response cache the studies share (unless they set no_cache)
    service.lock                    held by the service running out of this folder (one at a time)
    service/studies/<id>.json       {"id", "journal", "state", "paused", "created", "error",
                                     "endpoints", "running", "retry"}
    service/final/<id>.json         an ended study's last snapshot (it is listed after a restart)

A record's `state` is "active" while the study should run (it stays "active" when the service
is stopped with SIGTERM, so the next start resumes it), "cancelled" after a DELETE, "done" when
the study ended by itself (finished or failed), "broken" when its journal could not be
resumed (with `error`), and "quarantined" when the service died twice running it (with `error`;
`engine.service.restarts`). `running` names the process running the study, and `retry` says
that run is the one automatic retry after a crash. Records are replaced atomically (write, then rename). Journals written
by `ape-engine run` are never touched: only studies the service created are resumed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import msgspec
import orjson

from engine.errors import JournalError
from engine.nesting import json_depth_problem
from engine.study.cache import CACHE_FILE
from engine.study.journal import open_regular
from engine.study.locks import FileLock
from engine.task.paths import file_stem

__all__ = ["RecordState", "RunMark", "StateDir", "StudyRecord"]

RecordState = Literal["active", "cancelled", "done", "broken", "quarantined"]


class RunMark(msgspec.Struct):
    """The service process running a study: written before it starts, cleared when that
    process lets go of it (`engine.service.restarts`)."""

    pid: int
    host: str
    since: float


class StudyRecord(msgspec.Struct):
    id: str
    journal: str
    state: RecordState = "active"
    paused: bool = False
    created: float = 0.0
    error: str | None = None
    #: the operator's endpoints the study runs on, by role ("target", "proposal"): a name, or
    #: the names of a role that runs on several
    endpoints: dict[str, str | list[str]] = {}
    #: the process running it, when one is (a mark left by a process that died: a crash)
    running: RunMark | None = None
    #: this run is the one automatic retry after a crash (`engine.service.restarts`)
    retry: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


class StateDir:
    """Paths and study records under one state directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.journals = self.root / "journals"
        self.tasks = self.root / "tasks"
        self.cache = self.root / CACHE_FILE
        self.records = self.root / "service" / "studies"
        self.finals = self.root / "service" / "final"
        try:
            for folder in (self.journals, self.tasks, self.records, self.finals):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise JournalError(
                f"state directory {str(self.root)!r}: cannot create it ({error.strerror}); "
                "choose another with --state-dir"
            ) from None

    def lock(self) -> FileLock:
        """The lock the service running out of this folder holds (not yet taken)."""
        return FileLock(
            self.root / "service.lock",
            f"state directory {str(self.root)!r}",
            "one service runs out of a state directory at a time (two would run its studies "
            "twice): stop that one, or give this one another --state-dir",
            "ape-engine serve",
        )

    def journal_path(self, task_name: str, study_id: str) -> Path:
        return self.journals / f"{task_name}-{study_id}.jsonl"

    def save(self, record: StudyRecord) -> None:
        if not record.created:
            record.created = time.time()
        _replace(self.records / f"{file_stem(record.id)}.json", record.to_json(), "study record")

    def save_final(self, study_id: str, snapshot: dict[str, Any]) -> None:
        """An ended study's last snapshot, so that a restarted service still shows it."""
        _replace(self.finals / f"{file_stem(study_id)}.json", snapshot, "final snapshot")

    def load_final(self, study_id: str) -> dict[str, Any] | None:
        try:
            with open_regular(self.finals / f"{file_stem(study_id)}.json") as file:
                raw = file.read()
            data = None if json_depth_problem(raw) else orjson.loads(raw)
        except (OSError, orjson.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def load(self) -> list[StudyRecord]:
        """Every readable record, oldest first; a file that is not a record (nor a regular
        file) is skipped."""
        records = []
        for path in sorted(self.records.glob("*.json")):
            try:
                with open_regular(path) as file:
                    records.append(msgspec.json.decode(file.read(), type=StudyRecord))
            except (OSError, msgspec.DecodeError):
                continue
        records.sort(key=lambda record: record.created)
        return records


def _replace(path: Path, data: dict[str, Any], what: str) -> None:
    """Write `data` as JSON at `path` atomically (write, then rename)."""
    temporary = path.with_suffix(".tmp")
    try:
        temporary.write_bytes(orjson.dumps(data))
        os.replace(temporary, path)
    except OSError as error:
        raise JournalError(f"{what} {str(path)!r}: cannot write it ({error.strerror})") from None
