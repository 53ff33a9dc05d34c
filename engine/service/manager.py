"""The studies a service holds: create, run, change, cancel, drain, and resume on start.

The service sits below the composition: it runs studies through a `Launcher` it is given
(`engine.service.launcher`; `engine.app.launcher.Launcher` in `ape-engine serve`), which prepares
a study from its config or its journal and opens it. What a request may not decide -- endpoints,
folders, the concurrency cap -- the `Operator` (`engine.service.operator`) resolves first. Every study runs as one task in the
manager's task group; its `StudyEntry` (`engine.service.entry`) holds the running study (the
`StudyControl` the API's PATCH and DELETE call), an `EventBus` observing it (the SSE stream
subscribes to it), and the limiters it took from the `SharedEndpoints`, which give studies on
the same endpoint one fairly shared limiter. Draining (SIGTERM): no new study, every study
paused so no new call starts, calls in flight get a grace period, then each study is stopped and
writes its result record; its service record stays "active" so the next start resumes it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from engine.errors import ConfigError, DatasetError, EngineError, JournalError
from engine.llm.pacing.fair_share import SharedEndpoints
from engine.service.entry import StudyEntry
from engine.service.launcher import Launcher, PreparedStudy
from engine.service.operator import Operator
from engine.service.patching import apply_patch
from engine.service.requests import (
    InlineTask,
    Patch,
    RequestError,
    config_field,
    write_inline_candidates,
    write_inline_task,
)
from engine.service.restarts import (
    HEALTHY_S,
    ended_snapshot,
    let_go,
    run_by_me,
)
from engine.service.resuming import Resuming
from engine.service.state import StateDir, StudyRecord
from engine.settings import StudyConfig
from engine.study.journal import JournalWriteError
from engine.study.snapshot import (
    StudyControl,
    StudySnapshot,
)

__all__ = ["Launcher", "PreparedStudy", "StudyEntry", "StudyManager"]

logger = logging.getLogger("engine.service")

_ATTACH_WAIT_S = 10.0
_CANCEL_WAIT_S = 10.0
_UNWIND_S = 3.0  # a stopped study cancels its calls and writes its result record in this time
_DRAIN_REASON = "the service stopped; it resumes this study when it starts again"


class StudyManager:
    """Holds the studies; use as ``async with StudyManager(state) as manager:`` (the task group
    the studies run in lives as long as the block)."""

    def __init__(
        self,
        state: StateDir,
        launcher: Launcher,
        *,
        say: Callable[[str], None] = print,
        endpoints: SharedEndpoints | None = None,
        operator: Operator | None = None,
        healthy_s: float = HEALTHY_S,
    ) -> None:
        self.state = state
        self.healthy_s = healthy_s  # a retry that runs this long has started well
        self.launcher = launcher
        self.operator = operator or Operator()
        self.say = say
        self.endpoints = endpoints or SharedEndpoints()
        self.entries: dict[str, StudyEntry] = {}
        self.closing = False
        self._force = anyio.Event()
        self._group_context: TaskGroup | None = None
        self._group: TaskGroup | None = None
        self._state_lock = state.lock()

    async def __aenter__(self) -> StudyManager:
        self._state_lock.acquire()  # one service per state folder: a second is refused here
        self._group_context = anyio.create_task_group()
        self._group = await self._group_context.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._group_context is not None
        if exc is not None:
            self._group_context.cancel_scope.cancel()
        try:
            return await self._group_context.__aexit__(exc_type, exc, traceback)
        finally:
            self._group = None
            self._state_lock.release()

    # -- creating and starting ---------------------------------------------------------------

    def get(self, study_id: str) -> StudyEntry:
        entry = self.entries.get(study_id)
        if entry is None:
            raise RequestError(f"no study {study_id!r} in this service", "id", status=404)
        return entry

    async def create(self, settings: dict[str, Any], task: InlineTask | None) -> StudyEntry:
        """Check, prepare and start a study; a `RequestError` (naming the field) leaves
        nothing behind."""
        if self.closing:
            raise RequestError("the service is shutting down; it takes no new study", status=503)
        self.operator.check_active(sum(not entry.done.is_set() for entry in self.entries.values()))
        inline = settings.pop("candidates", None)  # the body's list (a path is refused)
        settings, names = self.operator.resolve(settings)
        if isinstance(inline, list):  # kept as a file in the state folder, like a task
            settings["candidates"] = str(write_inline_candidates(inline, self.state.tasks))
        if not settings.get("no_cache"):
            settings["cache"] = str(self.state.cache)
            settings["cache_max_mb"] = self.operator.cache_max_mb
        try:
            config = StudyConfig.of(**settings)
        except ConfigError as error:
            raise RequestError(str(error), config_field(error)) from None
        task_folder: Path | None = None
        if task is not None:
            path = write_inline_task(task, self.state.tasks)
            task_folder = path.parent
            config = config.replace(task=str(path), task_format="bigbench")
        try:
            prepared = await anyio.to_thread.run_sync(
                lambda: self.launcher.prepare(config, journals=self.state.journals)
            )
        except EngineError as error:
            self._forget_task(task_folder, config)
            raise RequestError(str(error), _field_of(error, inline=task is not None)) from None
        try:
            self.operator.check_footprint(*prepared.worst_case)
        except RequestError:
            self._forget_task(task_folder, config)
            raise
        record = StudyRecord(prepared.study_id, str(prepared.journal_path), endpoints=names)
        run_by_me(record, retry=False)
        self.state.save(record)
        return self.start(prepared, record)

    def _forget_task(self, task_folder: Path | None, config: StudyConfig) -> None:
        """A refused request's inline task leaves nothing behind (unless a study uses it)."""
        if task_folder is not None and not any(
            entry.prepared is not None and entry.prepared.config.task.name == config.task.name
            for entry in self.entries.values()
        ):
            shutil.rmtree(task_folder, ignore_errors=True)

    def start(self, prepared: PreparedStudy, record: StudyRecord) -> StudyEntry:
        """Run `prepared` as a task of the service, under `record`."""
        if self._group is None:
            raise EngineError("the study manager is not running (use 'async with')")
        entry = StudyEntry(prepared, record, self.endpoints, self.say)
        self.entries[entry.id] = entry
        self._group.start_soon(self._run, entry, name=f"study {entry.id}")
        return entry

    async def _run(self, entry: StudyEntry) -> None:
        try:
            with entry.scope:
                try:
                    await self._run_study(entry)
                except EngineError as error:
                    entry.error = str(error)
                    entry.journal_failed = isinstance(error, JournalWriteError)
                    entry.say(f"failed: {error}")
                except Exception as error:  # a bug: keep serving the other studies
                    logger.exception("study %s crashed", entry.id)
                    entry.error = f"internal error: {type(error).__name__}: {error}"
                    entry.say(entry.error)
        finally:
            self.endpoints.release(entry.limiters)
            if entry.prepared is not None and entry.prepared.lock is not None:
                entry.prepared.lock.release()
            self._settle(entry)
            entry.bus.close()
            entry.done.set()

    async def _run_study(self, entry: StudyEntry) -> None:
        assert entry.prepared is not None
        opened = self.launcher.open(
            entry.prepared,
            observers=[entry.bus.publish],
            say=entry.say,
            limiter_for=entry.limiter_for,
        )
        async with opened as study:
            entry.hold(study)
            if entry.record.retry and self._group is not None:
                self._group.start_soon(self._healthy, entry)
            entry.result = await study.run()

    async def _healthy(self, entry: StudyEntry) -> None:
        """A retry that runs `healthy_s` seconds has started well: a later death of the
        service is a first crash again."""
        with anyio.move_on_after(self.healthy_s):
            await entry.done.wait()
        if not entry.done.is_set() and entry.record.retry:
            entry.record.retry = False
            try:
                self.state.save(entry.record)
            except JournalError as error:
                self.say(str(error))

    def _settle(self, entry: StudyEntry) -> None:
        record = entry.record
        let_go(record)  # this process ended it, or stopped it for later: not a crash
        if entry.cancel_requested:
            record.state = "cancelled"
        elif (
            entry.stop_reason is not None
            or (entry.result is None and entry.error is None)
            or entry.journal_failed
        ):
            record.state = "active"  # stopped by the service or a full disk: resume it later
        else:
            record.state = "done"
            record.error = entry.error
        if entry.result is not None:
            entry.say(f"{entry.result.status}: {entry.result.reason}")
        try:
            if record.state != "active":
                self.state.save_final(entry.id, entry.snapshot().to_json())
            self.state.save(record)
        except JournalError as error:
            self.say(str(error))

    # -- changing -------------------------------------------------------------------------------

    async def _attached(self, entry: StudyEntry) -> StudyControl:
        with anyio.move_on_after(_ATTACH_WAIT_S):
            await entry.attached.wait()
        if entry.control is None:
            state = "failed" if entry.error else "still starting"
            raise RequestError(f"study {entry.id} is {state}; nothing to change", status=409)
        return entry.control

    async def patch(self, entry: StudyEntry, patch: Patch) -> StudySnapshot:
        """Apply a checked patch; the candidate numbers are checked here first, so a bad one
        changes nothing."""
        if self.closing:
            raise RequestError("the service is shutting down; studies take no change", status=503)
        if entry.done.is_set():  # ended, perhaps before this service started
            status = entry.snapshot().status
            raise RequestError(f"study {entry.id} is {status}; nothing to change", status=409)
        control = await self._attached(entry)
        snapshot = control.snapshot()
        if entry.done.is_set() or snapshot.done:
            raise RequestError(
                f"study {entry.id} is {snapshot.status}; nothing to change", status=409
            )
        self.operator.check_concurrency(patch.concurrency, "concurrency")
        apply_patch(entry, control, snapshot, patch)
        if patch.paused is not None:
            entry.record.paused = patch.paused
            self.state.save(entry.record)
        return control.snapshot()

    async def cancel(self, entry: StudyEntry) -> StudySnapshot:
        """Cancel at the user's request (the study is not resumed on restart)."""
        if not entry.done.is_set():
            entry.cancel_requested = True
            if entry.control is not None:
                entry.control.cancel()
            else:
                entry.scope.cancel()
            with anyio.move_on_after(_CANCEL_WAIT_S):
                await entry.done.wait()
        return entry.snapshot()

    # -- stopping the service -----------------------------------------------------------------

    def force(self) -> None:
        """Skip what is left of the grace periods (a second signal)."""
        self._force.set()

    async def _quiet(self, entries: list[StudyEntry], timeout_s: float) -> None:
        """Until no entry has a call in flight (checked every 50 ms: in-flight counts have no
        event of their own), `timeout_s` passes, or `force()` is called."""
        with anyio.move_on_after(timeout_s):
            while any(not e.done.is_set() and e.in_flight() > 0 for e in entries):
                with anyio.move_on_after(0.05):
                    await self._force.wait()
                if self._force.is_set():
                    return

    async def drain(self, grace_s: float) -> None:
        """Stop taking work; give calls in flight `grace_s` to finish, then stop every study
        (it cancels what is still in flight and writes its result record), and after another
        `grace_s` (at least 3 s) cancel what still runs (a final evaluation): its journal then
        lacks the result, and the next start resumes it."""
        self.closing = True
        live = [entry for entry in self.entries.values() if not entry.done.is_set()]
        if not live:
            return
        calls = sum(entry.in_flight() for entry in live)
        self.say(
            f"stopping: {len(live)} studies running, {calls} calls in flight get up to "
            f"{grace_s:g} s to finish"
        )
        for entry in live:
            entry.stop_reason = _DRAIN_REASON
            if entry.control is not None:
                entry.control.pause()
        await self._quiet(live, grace_s)
        for entry in live:
            if not entry.done.is_set():
                entry.stop(_DRAIN_REASON)
        unwind_s = _UNWIND_S if self._force.is_set() else max(grace_s, _UNWIND_S)
        with anyio.move_on_after(unwind_s):
            for entry in live:
                await entry.done.wait()
        for entry in live:
            if not entry.done.is_set():
                self.say(f"study {entry.id}: still running after the grace period; cancelled")
                entry.scope.cancel()
        for entry in live:
            await entry.done.wait()

    # -- starting the service, resuming -------------------------------------------------------

    async def resume_unfinished(self) -> list[StudyEntry]:
        """Start again every study of this state directory that the service was running when
        it stopped; list the others as they ended (`engine.service.resuming`)."""
        return await Resuming(self).unfinished()

    async def resume(self, entry: StudyEntry) -> StudyEntry:
        """Run again, when asked, a study the service does not run (`Resuming.asked`)."""
        if self.closing:
            raise RequestError("the service is shutting down; it takes no new work", status=503)
        return await Resuming(self).asked(entry)

    def list_ended(self, record: StudyRecord) -> None:
        """An ended study, listed with the last snapshot it left (or what its journal says)."""
        snapshot = ended_snapshot(self.state, record)
        self.entries[record.id] = StudyEntry.ended(record, snapshot, self.endpoints, self.say)

    def running(self) -> int:
        return sum(1 for entry in self.entries.values() if not entry.done.is_set())


def _field_of(error: EngineError, *, inline: bool) -> str | None:
    """The request field a preparation error is about."""
    field: str | None = config_field(error)
    if isinstance(error, DatasetError) or (field is None and "task" in str(error)):
        field = "task" if inline else "config.task"
    return field
