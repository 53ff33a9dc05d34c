"""Studies read back for the result commands (`studies`, `show`, `export`, the HTML report):
which journal a reference names, the studies of a state folder, and a record with the
examples' inputs and expected outputs when the task it was made on can be loaded again.

A reference is a journal's path, or a study's id looked up in the state folder's
``journals/`` (where `ape-engine run` and `ape-engine serve` keep them). The task is loaded
from the study's settings and used only when its fingerprint is the journal's: a task file
changed since, or a study of examples in memory, reads back without inputs, never with
another task's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.app.prepare import DEFAULT_STATE_DIR, config_of, study_splits, study_task
from engine.errors import EngineError, JournalError
from engine.study.journal import (
    NotRegular,
    Replay,
    open_regular,
    replay_journal,
    task_fingerprint,
)
from engine.study.record import StudyRecord, record_of
from engine.study.scheduler import reward_kind
from engine.task import Splits

__all__ = [
    "DEFAULT_STATE_DIR",
    "Listing",
    "find_journal",
    "list_studies",
    "open_record",
    "read_record",
    "study_settings",
]

Say = Callable[[str], None]
_HEADER_BYTES = 1 << 24  # a first line longer than this is not a journal's header


@dataclass(frozen=True, slots=True)
class Listing:
    """The studies of a state folder, newest first, and the files that are not journals."""

    folder: Path
    records: tuple[StudyRecord, ...]
    skipped: tuple[tuple[Path, str], ...]  # (file, why)


def journals_folder(state: Path) -> Path:
    """A state folder's journals (``STATE/journals``), or the folder itself if it has none."""
    inner = state / "journals"
    return inner if inner.is_dir() else state


def find_journal(
    reference: str, state: Path = DEFAULT_STATE_DIR, *, say: Say | None = None
) -> Path:
    """The journal a path or a study id names; a `JournalError` names what was looked for.
    A file of the folder that is not a regular file (a FIFO, a link to a device) is never
    read: `say` names it."""
    path = Path(reference)
    if path.exists() and not path.is_dir():
        return path  # reading it says what it is when it is not a regular file
    if path.suffix == ".jsonl" or "/" in reference:
        raise JournalError(f"journal {reference!r}: no such file")
    folder = journals_folder(state)
    if not folder.is_dir():
        raise JournalError(
            f"{reference!r}: no such journal file, and no state folder {str(state)!r} to look "
            "for a study of that id in (--state-dir DIR)"
        )
    named = sorted(folder.glob(f"*{_glob_safe(reference)}*.jsonl"))  # run's and serve's names
    found = [path for path in named if _study_id(path, say) == reference]
    if not found:  # a journal named by --journal: its first line says whose it is
        others = [path for path in sorted(folder.glob("*.jsonl")) if path not in named]
        found = [path for path in others if _study_id(path, say) == reference]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(str(path) for path in found)
        raise JournalError(f"study {reference!r}: in more than one journal ({names}); name one")
    raise JournalError(
        f"{reference!r}: no such journal file, and no study of that id in {str(folder)!r} "
        "(ape-engine studies lists them)"
    )


def _glob_safe(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum() or ch in "-_")


def _study_id(path: Path, say: Say | None) -> str | None:
    """The study id in a journal's first line (the rest is not read); what is not a regular
    file is said and skipped."""
    try:
        with open_regular(path) as file:
            header = orjson.loads(file.readline(_HEADER_BYTES))
    except NotRegular as error:
        if say is not None:
            say(f"skipped {path}: {error.strerror}")
        return None
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("kind") != "study_started":
        return None
    study_id = header.get("study_id")
    return study_id if isinstance(study_id, str) else None


def open_record(
    reference: str | Path, state: Path = DEFAULT_STATE_DIR, *, say: Say | None = None
) -> StudyRecord:
    """The study a path or id names, with inputs and expected outputs when its task loads
    (`say`: as `find_journal`)."""
    replay = replay_journal(find_journal(str(reference), state, say=say))
    splits, metric = _pools(replay)
    return _record(replay, splits, metric)


def read_record(
    path: str | Path, *, splits: Splits | None = None, metric: str | None = None
) -> StudyRecord:
    """The study of the journal at `path`; `splits` (the task's pools) put inputs and expected
    outputs in the answer rows, `metric` stands for the journal's when it kept none."""
    return _record(replay_journal(path), splits, metric)


def _record(replay: Replay, splits: Splits | None, metric: str | None = None) -> StudyRecord:
    """The study of `replay`, read with the settings its header holds."""
    config = config_of(replay)
    scoring = config.scoring
    metric = metric or replay.started.task.metric or scoring.metric or "exact_match"
    rewards = replay.started.task.rewards or reward_kind(
        scoring.mode, metric, custom=bool(scoring.scorer)
    )
    return record_of(replay, config.study(), rewards=rewards, splits=splits)


def _pools(replay: Replay) -> tuple[Splits | None, str | None]:
    """The study's pools and metric, when its task loads as it was (same fingerprint)."""
    try:
        config = config_of(replay)
        task = study_task(config.task, config.scoring.metric, config.search.seed)
        if task_fingerprint(task) != replay.started.task.fingerprint:
            return None, None
        return study_splits(config.search, task), task.metric
    except (EngineError, OSError):
        return None, None


def study_settings(record: StudyRecord) -> dict[str, Any]:
    """A study's settings by flat name, as its journal's header holds them (for `compare`)."""
    replay = replay_journal(record.path)
    return config_of(replay).flat()


def list_studies(state: Path = DEFAULT_STATE_DIR) -> Listing:
    """Every study in the state folder's journals, newest first (no task is loaded: a listing
    needs no inputs)."""
    folder = journals_folder(state)
    if not folder.is_dir():
        raise JournalError(f"state folder {str(state)!r}: no such folder")
    records: list[StudyRecord] = []
    skipped: list[tuple[Path, str]] = []
    for path in sorted(folder.glob("*.jsonl")):
        try:
            replay = replay_journal(path)
            # an older journal kept no pool sizes: its task gives them
            splits = None if replay.started.pools else _pools(replay)[0]
            records.append(_record(replay, splits))
        except EngineError as error:
            skipped.append((path, str(error)))
    records.sort(key=lambda record: record.created, reverse=True)
    return Listing(folder, tuple(records), tuple(skipped))
