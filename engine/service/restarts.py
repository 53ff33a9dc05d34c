"""What a service does with its studies when it starts again: resume, retry once, or quarantine.

A study's record says whether a service process is running it (`StudyRecord.running`: pid, host,
since when), written before the study starts and cleared when that process lets go of it on its
own (the study ended, the service drained, the journal could not be written). A mark still there
when a service starts means the process died while running the study -- killed, out of memory,
a power cut -- and perhaps because of it. Such a study is resumed automatically once more, as a
retry (`StudyRecord.retry`). If the process dies again before the retry has run for
`HEALTHY_S` seconds, the study is quarantined: its record and its journal (a `status_changed`
record) say so with the reason, so `ape-engine studies`, the snapshot and `top` show it, and it
runs again only when asked (``POST /v1/studies/{id}/resume``, or `ape-engine resume JOURNAL`).
A retry that runs `HEALTHY_S` seconds is a start like any other: the next death gets a retry too.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Any, Literal

from engine.errors import EngineError
from engine.service.state import RunMark, StateDir, StudyRecord
from engine.settings import StudyConfig
from engine.study.events import StatusChanged, StudyFinished, StudyStarted
from engine.study.journal import JournalWriter, read_events
from engine.study.locks import journal_lock
from engine.study.snapshot import (
    HeldOutResult,
    StudySnapshot,
    held_out_of,
)

__all__ = [
    "HEALTHY_S",
    "Restart",
    "journal_snapshot",
    "let_go",
    "quarantine",
    "restart_of",
    "run_by_me",
]

#: A retry that runs this long has started well: a later death of the service gets a retry too.
HEALTHY_S = 120.0

Restart = Literal["resume", "retry", "quarantine"]


def restart_of(record: StudyRecord) -> Restart:
    """What a starting service does with an active study: resume it (the last process let go
    of it), retry it once (the process died running it), or quarantine it (the retry died)."""
    if record.running is None:
        return "resume"
    return "quarantine" if record.retry else "retry"


def run_by_me(record: StudyRecord, *, retry: bool) -> None:
    """Mark `record` as run by this process (saved by the caller before the study starts)."""
    record.running = RunMark(os.getpid(), socket.gethostname(), time.time())
    record.retry = retry


def let_go(record: StudyRecord) -> None:
    """This process stopped running the study on its own: no crash to count."""
    record.running = None
    record.retry = False


def quarantine(record: StudyRecord) -> str:
    """Quarantine `record` (saved by the caller) and say so in its journal; the reason."""
    mark = record.running
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mark.since)) if mark else "?"
    who = f"pid {mark.pid} on {mark.host}" if mark else "?"
    reason = (
        f"quarantined: the service died twice while running this study, the second time "
        f"within {HEALTHY_S:g} s of resuming it ({who}, since {since}); it is not resumed on "
        f"its own. Resume it when the cause is fixed: POST /v1/studies/{record.id}/resume, or "
        f"ape-engine resume {record.journal}"
    )
    record.state = "quarantined"
    record.error = reason
    record.running = None
    record.retry = False
    try:  # the journal says so too, for the commands that read it (studies, show)
        with journal_lock(record.journal, f"ape-engine serve, study {record.id}"):
            writer = JournalWriter(record.journal)
            try:
                writer(StatusChanged(status="quarantined", reason=reason))
            finally:
                writer.close()
    except EngineError as error:  # the record is the service's word; the journal can wait
        reason = f"{reason} (not written to its journal: {error})"
        record.error = reason
    return reason


def ended_snapshot(state: StateDir, record: StudyRecord) -> StudySnapshot:
    """The snapshot an ended study is listed with: the last one it left, or what its journal
    says (always, for a quarantined one: its journal has the latest word)."""
    saved = None if record.state == "quarantined" else state.load_final(record.id)
    snapshot = None
    if saved is not None:
        try:
            snapshot = StudySnapshot.from_json(saved)
        except EngineError:
            snapshot = None
    if snapshot is None:
        return journal_snapshot(record)
    if snapshot.held_out is None and snapshot.extra.result is not None:
        try:  # saved before snapshots carried it: the result record has it
            held_out = held_out_of(snapshot.extra.result)
            snapshot = dataclasses.replace(snapshot, held_out=held_out)
        except EngineError:
            pass
    return snapshot


def journal_snapshot(record: StudyRecord) -> StudySnapshot:
    """What an ended (or quarantined) study's journal says of it, for one that left no
    snapshot."""
    task = policy = "?"
    status: Any = record.state if record.state in ("cancelled", "quarantined") else "failed"
    reason = record.error or ""
    winner = None
    held_out: HeldOutResult | None = None
    result: dict[str, Any] | None = None
    try:
        events = read_events(record.journal)
    except EngineError as error:
        events, reason = [], reason or str(error)
    for event in events:
        if isinstance(event, StudyStarted):
            task, policy = event.task.name, _policy_of(event.config)
        elif isinstance(event, StatusChanged) and event.status == "quarantined":
            status, reason = event.status, event.reason
        elif isinstance(event, StudyFinished):
            status, reason, winner = event.status, event.reason, event.winner
            result = event.result
            try:
                held_out = held_out_of(event.result)
            except EngineError as error:  # the rest of the record still shows
                reason = f"{reason}; {error}"
    return StudySnapshot.blank(
        record.id,
        task=task,
        policy=policy,
        status=status,
        reason=reason,
        winner=winner,
        held_out=held_out,
        result=result,
    )


def _policy_of(settings: dict[str, Any]) -> str:
    """The policy a journal header's settings name (any version), or "?"."""
    try:
        return StudyConfig.from_json(settings).search.policy
    except EngineError:
        return "?"
