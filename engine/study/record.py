"""A study read back from its journal, for people to look at: `record_of(replay, settings)`
(`engine.app.records.read_record(path)` reads the settings from the journal's header).

The journal's events are applied to a fresh `StudyState` with the policy the study ran with
(`engine.study.scheduler`: same pool size, seed, delta, epsilon, planned candidates and reward
kind), so the intervals shown are the study's own. Beside the state, the same pass keeps what
the state does not: the leader's interval and the spend as they moved (`timeline`, sampled at
most `TIMELINE_POINTS` times), and every answer scored (`answers`: one row per scoring call and
per call of the evaluation on the test pool). The examples' inputs and expected outputs are not
in the journal: give the task's pools (`splits`) to have them in the rows.

Status: a journal whose last run wrote its final record is ``finished``, ``failed`` or
``stopped`` (a study cancelled by its user); one without a final record is ``running`` when its
file changed in the last `RUNNING_WITHIN_S` seconds (a running study writes the time passed
every second), else ``stopped`` (its process ended first; `ape-engine resume` continues it).
A paused study that writes nothing for longer shows as stopped. One whose last record says the
service quarantined it (it died twice running it: `engine.service.restarts`) is
``quarantined`` until it is resumed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from engine.errors import EngineError, JournalError
from engine.search import Certificate
from engine.study.budgets import Spend
from engine.study.events import (
    EvaluationDone,
    Event,
    PoolSizes,
    PullDone,
    TaskIdentity,
)
from engine.study.intervals import mean_interval
from engine.study.journal import Replay
from engine.study.scheduler import study_policy, user_candidates_in
from engine.study.settings import StudySettings
from engine.study.snapshot import ArmRow
from engine.study.state import StudyState, prompt_key
from engine.study.views import arm_rows, ranked_arms
from engine.task.split import Splits

__all__ = [
    "RUNNING_WITHIN_S",
    "TIMELINE_POINTS",
    "AnswerRow",
    "HeldOut",
    "RecordStatus",
    "StudyRecord",
    "TimePoint",
    "record_of",
]

RecordStatus = Literal["running", "finished", "stopped", "failed", "quarantined"]
RUNNING_WITHIN_S = 120.0
TIMELINE_POINTS = 400


@dataclass(frozen=True, slots=True)
class HeldOut:
    """An instruction's score on the held-out test pool (`n` examples scored so far)."""

    role: str  # "winner", "runner_up", "human" or "baseline" (the gate's)
    instruction: str
    arm: int | None  # the candidate it is, if it is one
    score: float
    interval: tuple[float, float]
    n: int


@dataclass(frozen=True, slots=True)
class TimePoint:
    """The study at one moment: calls and money spent, and the leader with its interval."""

    scoring_calls: int
    seconds: float
    usd: float
    tokens: int
    leader: int | None
    mean: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class AnswerRow:
    """One answer scored: of a candidate on the scoring pool, or of an instruction evaluated
    on the test pool (`role`). `input` and `expected` are empty without the task."""

    arm: int | None
    instruction: str
    pool: Literal["scoring", "test"]
    role: str
    example: int
    input: str
    expected: tuple[str, ...]
    answer: str
    reward: float
    cached: bool
    note: str = ""  # why the task's checks gave less than 1, when they said


@dataclass(frozen=True, slots=True)
class StudyRecord:
    path: Path
    study_id: str
    created: float
    updated: float  # the journal file's last change
    engine: str
    settings: StudySettings  # the groups the study read (its policy's settings among them)
    certificate: Certificate | None  # what the data prove about the pick
    task: TaskIdentity
    models: dict[str, Any]
    pools: PoolSizes
    status: RecordStatus
    reason: str
    error: str | None
    arms: tuple[ArmRow, ...]
    ranking: tuple[int, ...]  # arms, the recommendation first, then by mean (pulled ones)
    winner: int | None
    held_out: tuple[HeldOut, ...]
    spend: Spend
    timeline: tuple[TimePoint, ...]
    answers: tuple[AnswerRow, ...]
    warnings: tuple[str, ...]
    failures: dict[str, int]
    with_task: bool  # the rows carry inputs and expected outputs
    proposals: dict[str, dict[str, Any]] = field(default_factory=dict)  # by kind of call

    def held(self, role: str) -> HeldOut | None:
        return next((row for row in self.held_out if row.role == role), None)

    @property
    def model(self) -> str:
        return str(self.models.get("target", {}).get("model") or "")

    @property
    def policy(self) -> str:
        return self.settings.search.policy

    def ranked(self) -> list[ArmRow]:
        rest = [arm for arm in self.arms if arm.arm not in self.ranking]
        return [self.arms[index] for index in self.ranking] + rest


def record_of(
    replay: Replay, settings: StudySettings, *, rewards: str, splits: Splits | None = None
) -> StudyRecord:
    where = f"journal {str(replay.path)!r}"
    started = replay.started
    pools = started.pools or _pool_sizes(splits, where)
    # the user's own candidates, as the first run planned with them
    settings = msgspec.structs.replace(settings, user_candidates=user_candidates_in(replay.events))
    policy = study_policy(settings, n=pools.scoring, rewards=rewards)
    state = StudyState(settings, policy)
    timeline = _apply_all(state, replay)
    updated = _modified(replay.path)
    ranking = tuple(ranked_arms(state))
    winner = replay.finished.winner if replay.finished is not None else None
    if winner is None and ranking:
        winner = ranking[0]
    return StudyRecord(
        path=replay.path,
        study_id=started.study_id,
        created=started.created,
        updated=updated,
        engine=started.engine,
        settings=settings,
        task=started.task,
        models=dict(started.models),
        pools=pools,
        status=_status(replay, state, updated),
        reason=state.reason,
        error=state.fatal,
        arms=arm_rows(state, pools.scoring, demo_pool=splits.demo if splits else ()),
        certificate=state.certificate() if state.arms else None,
        ranking=ranking,
        winner=winner,
        held_out=_held_out(state, replay.events),
        spend=Spend.from_json(state.spend.to_json()),
        timeline=tuple(timeline),
        answers=tuple(_answers(state, replay.events, splits)),
        warnings=tuple(warning.message for warning in state.warnings),
        failures=dict(state.failure_kinds),
        with_task=splits is not None,
        proposals={kind: tally.to_json() for kind, tally in state.proposal_kinds.items()},
    )


def _pool_sizes(splits: Splits | None, where: str) -> PoolSizes:
    if splits is None:
        raise JournalError(
            f"{where}: written before the pool sizes were kept; it reads back with its task "
            "(the task file or built-in task the study was started on)"
        )
    return PoolSizes(len(splits.demo), len(splits.scoring), len(splits.test))


def _apply_all(state: StudyState, replay: Replay) -> list[TimePoint]:
    """Apply every event; a point of the timeline every `step` scoring calls and at the end."""
    events = replay.events
    pulls = sum(isinstance(event, PullDone) for event in events)
    step = max(1, -(-pulls // TIMELINE_POINTS))
    timeline: list[TimePoint] = []
    seen = 0
    for index, event in enumerate(events):
        try:
            state.apply(event)
        except EngineError as error:  # a record the policy refuses (out of its pool)
            raise JournalError(f"{replay.where(index)}: {error}; the journal is damaged") from None
        if isinstance(event, PullDone):
            seen += 1
            if seen % step == 0:
                timeline.append(_point(state))
    if state.spend.scoring_calls and (not timeline or timeline[-1] != _point(state)):
        timeline.append(_point(state))
    return timeline


def _point(state: StudyState) -> TimePoint:
    leader = state.policy.recommendation() if state.arms else None
    spend = state.spend
    if leader is None:
        return TimePoint(
            spend.scoring_calls, spend.seconds, spend.usd, spend.tokens, None, 0.0, 0.0, 1.0
        )
    stats = state.policy.stats(leader)
    return TimePoint(
        spend.scoring_calls,
        spend.seconds,
        spend.usd,
        spend.tokens,
        leader,
        float(stats.mean),
        float(stats.lower),
        float(stats.upper),
    )


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _status(replay: Replay, state: StudyState, updated: float) -> RecordStatus:
    if state.status == "quarantined":  # its last record: the service quarantined it
        return "quarantined"
    finished = replay.finished
    if finished is not None:
        if finished.status == "finished":
            return "finished"
        return "failed" if finished.status == "failed" else "stopped"
    if state.status == "failed":
        return "failed"
    return "running" if time.time() - updated < RUNNING_WITHIN_S else "stopped"


def _held_out(state: StudyState, events: list[Event]) -> tuple[HeldOut, ...]:
    """The instructions evaluated on the test pool, by role (the latest for each role: a study
    resumed with a larger budget may evaluate another winner)."""
    roles: dict[str, tuple[str, str]] = {}  # role -> (prompt key, instruction)
    for event in events:
        if isinstance(event, EvaluationDone):
            roles[event.role] = (prompt_key(event.instruction, event.demos), event.instruction)
    arms = {arm.prompt: arm.index for arm in state.arms}
    human = next((arm.instruction for arm in state.arms if arm.origin == "human"), None)
    if "human" not in roles and human in state.evaluated:  # evaluated as the winner, once
        roles["human"] = (human, human)
    rows = []
    for role in ("winner", "runner_up", "human", "baseline"):
        if role not in roles:
            continue
        key, instruction = roles[role]
        rewards = list(state.evaluated.get(key, {}).values())
        score, interval = mean_interval(rewards)
        rows.append(HeldOut(role, instruction, arms.get(key), score, interval, len(rewards)))
    return tuple(rows)


def _answers(state: StudyState, events: list[Event], splits: Splits | None) -> list[AnswerRow]:
    arms = {arm.prompt: arm.index for arm in state.arms}
    instructions = [arm.instruction for arm in state.arms]
    rows = []
    for event in events:
        if isinstance(event, PullDone):
            arm: int | None = event.arm
            instruction, pool, role = instructions[event.arm], "scoring", ""
        elif isinstance(event, EvaluationDone):
            arm = arms.get(prompt_key(event.instruction, event.demos))
            instruction = event.instruction
            pool, role = "test", event.role
        else:
            continue
        source = None if splits is None else (splits.scoring if pool == "scoring" else splits.test)
        example = source[event.example] if source and event.example < len(source) else None
        rows.append(
            AnswerRow(
                arm=arm,
                instruction=instruction,
                pool=pool,  # type: ignore[arg-type]
                role=role,
                example=event.example,
                input=example.input if example else "",
                expected=example.outputs if example else (),
                answer=event.answer,
                reward=event.reward,
                cached=event.cached,
                note=event.note,
            )
        )
    return rows
