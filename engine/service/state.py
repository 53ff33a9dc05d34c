"""The service's state directory: its studies' journals, inline tasks, and one small record per
study that says whether the service should resume it when it starts.

Layout under ``--state-dir`` (default ``.ape``)::

    journals/<task>-<id>.jsonl      each study's journal (engine.study.journal)
    tasks/<name>-<hash>/task.json   tasks given inline, so a resumed study finds its task
    cache.jsonl                     the response cache the studies share (unless they set one)
    service/studies/<id>.json       {"id", "journal", "state", "paused", "created"}

A record's `state` is "active" while the study should run (it stays "active" when the service
is stopped with SIGTERM, so the next start resumes it), "cancelled" after a DELETE, "done" when
the study ended by itself (finished or failed), and "broken" when its journal could not be
resumed (with `error`). Records are replaced atomically (write, then rename). Journals written
by `ape-engine run` are never touched: only studies the service created are resumed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from engine.errors import JournalError

__all__ = ["RecordState", "StateDir", "StudyRecord"]

RecordState = Literal["active", "cancelled", "done", "broken"]


@dataclass(slots=True)
class StudyRecord:
    id: str
    journal: str
    state: RecordState = "active"
    paused: bool = False
    created: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "journal": self.journal,
            "state": self.state,
            "paused": self.paused,
            "created": self.created,
            "error": self.error,
        }


class StateDir:
    """Paths and study records under one state directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.journals = self.root / "journals"
        self.tasks = self.root / "tasks"
        self.cache = self.root / "cache.jsonl"
        self.records = self.root / "service" / "studies"
        try:
            for folder in (self.journals, self.tasks, self.records):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise JournalError(
                f"state directory {str(self.root)!r}: cannot create it ({error.strerror}); "
                "choose another with --state-dir"
            ) from None

    def journal_path(self, task_name: str, study_id: str) -> Path:
        return self.journals / f"{task_name}-{study_id}.jsonl"

    def save(self, record: StudyRecord) -> None:
        if not record.created:
            record.created = time.time()
        path = self.records / f"{record.id}.json"
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_bytes(orjson.dumps(record.to_json()))
            os.replace(temporary, path)
        except OSError as error:
            raise JournalError(
                f"study record {str(path)!r}: cannot write it ({error.strerror})"
            ) from None

    def load(self) -> list[StudyRecord]:
        """Every readable record, oldest first; unreadable files are skipped (and named in
        the returned records' errors only when they parse)."""
        records = []
        for path in sorted(self.records.glob("*.json")):
            try:
                data = orjson.loads(path.read_bytes())
                records.append(
                    StudyRecord(
                        id=str(data["id"]),
                        journal=str(data["journal"]),
                        state=data.get("state", "active"),
                        paused=bool(data.get("paused", False)),
                        created=float(data.get("created", 0.0)),
                        error=data.get("error"),
                    )
                )
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
        records.sort(key=lambda record: record.created)
        return records
