"""The study's journal records: what the study writes, and how a journal is replayed.

Every study appends JSON lines (orjson) to its journal: a header (config, task fingerprint,
seed, engine version, models), then candidates, observations, proposal spend, variant rounds,
budget changes, dropped arms, failures, progress (seconds) and finally the result. Each record
is handed to the operating system as soon as it is made (one `write` per record, no user-space
buffer), so `kill -9` loses only the calls in flight; `fsync` runs at most every 200 ms and at
close. Replay rebuilds `RestoredState`; a torn last line is tolerated, and a journal of another
task or of a different study-defining config is refused with a clear message.
Reference: Optuna's JournalStorage (an append-only log of operations replayed to rebuild state).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from engine import __version__
from engine.errors import JournalError
from engine.study.budgets import Spend
from engine.study.parts import Arm, RestoredState
from engine.task.types import Task

if TYPE_CHECKING:  # the study core does not import the composition layer at run time
    from engine.study.config import StudyConfig

__all__ = [
    "DEFINING_FIELDS",
    "JournalRecorder",
    "Replay",
    "read_journal",
    "replay_journal",
    "task_fingerprint",
]

#: Settings that define a study: a journal is resumed only with the same values.
DEFINING_FIELDS = (
    "task",
    "task_format",
    "model",
    "proposal_model",
    "api",
    "policy",
    "metric",
    "scoring",
    "delta",
    "epsilon",
    "seed",
    "demo_size",
    "scoring_size",
    "test_size",
    "scorer",  # a custom scorer, or the templates (the scoring template), change every reward
    "templates",
)
_FSYNC_EVERY_S = 0.2
VERSION = 1


def task_fingerprint(task: Task) -> str:
    """A hash of the task's examples, metric and human instruction."""
    digest = hashlib.sha256()
    digest.update(orjson.dumps([task.name, task.metric, task.human_instruction]))
    for example in task.examples:
        digest.update(orjson.dumps([example.input, list(example.outputs)]))
    for example in task.test_examples or ():
        digest.update(orjson.dumps(["test", example.input, list(example.outputs)]))
    return digest.hexdigest()[:16]


class JournalRecorder:
    """Appends the study's records to one file (implements `engine.study.parts.Recorder`)."""

    def __init__(self, path: str | Path, *, time_s: Any = time.monotonic) -> None:
        self.path = Path(path)
        self._time_s = time_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise JournalError(
                f"journal {str(self.path)!r}: cannot open it for writing ({error.strerror})"
            ) from None
        self._last_sync = self._time_s()
        self.records = 0

    def _write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record) + b"\n"
        try:
            os.write(self._fd, line)
        except OSError as error:
            raise JournalError(
                f"journal {str(self.path)!r}: cannot write ({error.strerror}); free some space "
                "and resume the study from it"
            ) from None
        self.records += 1
        now = self._time_s()
        if now - self._last_sync >= _FSYNC_EVERY_S:
            os.fsync(self._fd)
            self._last_sync = now

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    # -- the records -------------------------------------------------------------------------

    def header(
        self, *, study_id: str, config: StudyConfig, task: Task, models: dict[str, Any]
    ) -> None:
        self._write(
            {
                "type": "header",
                "version": VERSION,
                "engine": __version__,
                "study_id": study_id,
                "created": time.time(),
                "config": config.to_json(),
                "task": {"name": task.name, "fingerprint": task_fingerprint(task)},
                "models": models,
            }
        )

    def resumed(self) -> None:
        self._write({"type": "resumed", "at": time.time()})

    def candidate(self, arm: int, instruction: str, origin: str, parent: int | None) -> None:
        self._write(
            {
                "type": "candidate",
                "arm": arm,
                "instruction": instruction,
                "origin": origin,
                "parent": parent,
            }
        )

    def observation(
        self,
        arm: int,
        example: int,
        reward: float,
        prompt_tokens: int,
        completion_tokens: int,
        usd: float,
        latency_s: float,
        cached: bool,
    ) -> None:
        self._write(
            {
                "type": "observation",
                "arm": arm,
                "example": example,
                "reward": reward,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "usd": usd,
                "latency_s": round(latency_s, 4),
                "cached": cached,
            }
        )

    def proposals(self, calls: int, tokens: int, usd: float, cached_calls: int) -> None:
        self._write(
            {
                "type": "proposals",
                "calls": calls,
                "tokens": tokens,
                "usd": usd,
                "cached_calls": cached_calls,
            }
        )

    def variant_round(self, number: int) -> None:
        self._write({"type": "variant_round", "number": number})

    def budget(self, name: str, limit: float | None) -> None:
        self._write({"type": "budget", "name": name, "limit": limit})

    def drop(self, arm: int) -> None:
        self._write({"type": "drop", "arm": arm})

    def failure(self, kind: str, message: str) -> None:
        self._write({"type": "failure", "kind": kind, "message": message[:300]})

    def progress(self, spend: Spend) -> None:
        self._write({"type": "progress", "seconds": round(spend.seconds, 3)})

    def result(self, result: dict[str, Any]) -> None:
        self._write({"type": "result", "result": result})


def read_journal(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a journal; a torn (unparseable) last line is skipped, a torn line in the
    middle is a `JournalError` naming the line."""
    file = Path(path)
    try:
        lines = file.read_bytes().split(b"\n")
    except OSError as error:
        raise JournalError(f"journal {str(file)!r}: cannot read it ({error.strerror})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            if number == len(lines):
                return  # torn by a crash while writing
            raise JournalError(
                f"journal {str(file)!r}, line {number}: not JSON; the journal is damaged"
            ) from None
        if not isinstance(record, dict) or "type" not in record:
            raise JournalError(f"journal {str(file)!r}, line {number}: not a journal record")
        yield record


@dataclass(slots=True)
class Replay:
    study_id: str
    config: StudyConfig
    fingerprint: str
    task_name: str
    state: RestoredState
    result: dict[str, Any] | None


def _header_config(data: Any, where: str) -> StudyConfig:
    from engine.study.config import StudyConfig  # imported here: it imports this package

    return StudyConfig.from_json(data, where=where)


def replay_journal(path: str | Path) -> Replay:
    """Read a journal back into the config it was started with and the state it reached."""
    where = f"journal {str(path)!r}"
    records = iter(read_journal(path))
    header = next(records, None)
    if header is None or header.get("type") != "header":
        raise JournalError(f"{where}: no header record; is this an ape-engine journal?")
    if header.get("version") != VERSION:
        raise JournalError(f"{where}: journal version {header.get('version')} is not {VERSION}")
    config = _header_config(header["config"], where)
    state = RestoredState()
    spend = state.spend
    result: dict[str, Any] | None = None
    for record in records:
        kind = record["type"]
        if kind == "candidate":
            if record["arm"] != len(state.arms):
                raise JournalError(
                    f"{where}: candidate {record['arm']} out of order (expected {len(state.arms)})"
                )
            state.arms.append(
                Arm(record["arm"], record["instruction"], record["origin"], record["parent"])
            )
        elif kind == "observation":
            if not 0 <= record["arm"] < len(state.arms):
                raise JournalError(f"{where}: observation of unknown candidate {record['arm']}")
            state.observations.append((record["arm"], record["example"], float(record["reward"])))
            spend.scoring_calls += 1
            if record.get("cached"):
                spend.cached_calls += 1
            else:
                spend.tokens += int(record["prompt_tokens"]) + int(record["completion_tokens"])
                spend.usd += float(record["usd"])
        elif kind == "proposals":
            spend.proposal_calls += int(record["calls"])
            spend.cached_calls += int(record.get("cached_calls", 0))
            spend.tokens += int(record["tokens"])
            spend.usd += float(record["usd"])
        elif kind == "variant_round":
            state.variant_rounds_done = max(state.variant_rounds_done, int(record["number"]))
        elif kind == "budget":
            state.budgets[record["name"]] = record["limit"]
        elif kind == "drop":
            state.dropped.append(int(record["arm"]))
        elif kind == "failure":
            spend.failed_calls += 1
        elif kind == "progress":
            spend.seconds = max(spend.seconds, float(record["seconds"]))
        elif kind == "result":
            result = record["result"]
            spend.evaluation_calls = int(result.get("spend", {}).get("evaluation_calls", 0))
    return Replay(
        study_id=str(header.get("study_id", "")),
        config=config,
        fingerprint=str(header["task"]["fingerprint"]),
        task_name=str(header["task"]["name"]),
        state=state,
        result=result,
    )
