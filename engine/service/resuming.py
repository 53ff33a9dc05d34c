"""Studies the service runs again: at its start, those it was running when it stopped (once
more at most after a crash: `engine.service.restarts`), and on request one it quarantined or
left for another process. Each is read back from its journal with the journal's lock taken
first, and with what the operator offers now (its endpoints, the cache)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engine.errors import EngineError, JournalError
from engine.service.entry import StudyEntry
from engine.service.launcher import PreparedStudy
from engine.service.requests import RequestError
from engine.service.restarts import quarantine, restart_of, run_by_me
from engine.service.state import StudyRecord
from engine.settings import StudyConfig
from engine.study.locks import LockHeld, journal_lock

if TYPE_CHECKING:
    from engine.service.manager import StudyManager

__all__ = ["Resuming"]


class Resuming:
    """Resumes studies for `manager` (its state folder, launcher, operator and entries)."""

    def __init__(self, manager: StudyManager) -> None:
        self._manager = manager

    def _prepare_resume(self, record: StudyRecord) -> PreparedStudy | None:
        """The study of `record` read back from its journal, its lock held (taken before the
        journal is read: a `LockHeld` names the process writing it)."""
        journal = Path(record.journal)
        if not journal.is_file():
            raise JournalError(f"journal {str(journal)!r}: not found; cannot resume the study")

        def adjust(config: StudyConfig) -> dict[str, Any]:
            changes = self._manager.operator.resumed(config, record.endpoints)
            if not config.outputs.no_cache:  # the service's cache as it is now
                changes.update(
                    cache=str(self._manager.state.cache),
                    cache_max_mb=self._manager.operator.cache_max_mb,
                )
            return changes

        lock = journal_lock(journal, f"ape-engine serve, study {record.id}").acquire()
        try:
            prepared = self._manager.launcher.prepare_resume(journal, adjust=adjust)
        except BaseException:
            lock.release()
            raise
        if prepared is None:
            lock.release()
        else:
            prepared.lock = lock
        return prepared

    async def unfinished(self) -> list[StudyEntry]:
        """Start again every study of this state directory that the service was running when
        it stopped (its record "active", its journal without a final result); list the others
        as they ended."""
        started: list[StudyEntry] = []
        for record in self._manager.state.load():
            if record.id in self._manager.entries:
                continue
            if record.state != "active":
                self._manager.list_ended(record)
                continue
            restart = restart_of(record)
            if restart == "quarantine":
                reason = await anyio.to_thread.run_sync(quarantine, record)
                self._manager.state.save(record)
                self._manager.say(f"study {record.id}: {reason}")
                self._manager.list_ended(record)
                continue
            try:
                prepared = await anyio.to_thread.run_sync(self._prepare_resume, record)
            except LockHeld as error:  # another process writes it: left as it is, for later
                record.error = str(error)
                self._manager.say(f"study {record.id}: not resumed: {error}")
                self._manager.list_ended(record)
                continue
            except EngineError as error:
                record.state = "broken"
                record.error = str(error)
                self._manager.state.save(record)
                self._manager.say(f"study {record.id}: cannot resume it: {error}")
                self._manager.list_ended(record)
                continue
            if prepared is None:
                record.state = "done"
                self._manager.state.save(record)
                self._manager.list_ended(record)
                continue
            assert prepared.replay is not None
            candidates, observations = prepared.replay.counts()
            again = " once more: the service died while running it" if restart == "retry" else ""
            self._manager.say(
                f"study {record.id}: resuming from {record.journal} ({candidates} "
                f"candidates, {observations} observations){again}"
            )
            run_by_me(record, retry=restart == "retry")
            self._manager.state.save(record)
            started.append(self._manager.start(prepared, record))
        return started

    async def asked(self, entry: StudyEntry) -> StudyEntry:
        """Run again, when asked, a study the service does not run: one quarantined, or left
        active because another process held its journal. It runs as a retry: should the
        service die again within `healthy_s`, it is quarantined again."""
        record = entry.record
        if not entry.done.is_set():
            raise RequestError(f"study {entry.id} is running; nothing to resume", status=409)
        if record.state not in ("quarantined", "active"):
            status = entry.snapshot().status
            raise RequestError(
                f"study {entry.id} is {status}; only a quarantined study resumes here (raise "
                f"a finished one's budget with: ape-engine resume {record.journal})",
                status=409,
            )
        try:
            prepared = await anyio.to_thread.run_sync(self._prepare_resume, record)
        except EngineError as error:
            raise RequestError(f"study {entry.id}: cannot resume it: {error}", status=409) from None
        if prepared is None:
            raise RequestError(f"study {entry.id} has ended; nothing to resume", status=409)
        record.state, record.error = "active", None
        run_by_me(record, retry=True)
        self._manager.state.save(record)
        self._manager.say(f"study {record.id}: resumed on request from {record.journal}")
        return self._manager.start(prepared, record)
