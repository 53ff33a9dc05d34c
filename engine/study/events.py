"""The study's facts: every change to a study is one of these values.

The study emits an event; `StudyState.apply(event)` is the only state transition; the observers
of the study (the journal, the event bus of the UI and the service's stream, tests) each get
the event after it is applied. The journal writes every event as one JSON line (its ``kind``
names it) and resume reads the lines back into these types and applies them again, so the live
study and a replayed one run the same code. Decoding is typed: a record with a wrong type or a
value out of range (a reward of 7.5, a negative arm) is refused with its field path.

Events a journal replays change the state; `ArmEliminated` and `LeaderChanged` are read-outs
of the policy, published for the screens and kept in the journal for the record.
Reference: Optuna's JournalStorage (operations written to a log, replayed to rebuild state).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from engine.study.settings import BudgetName

__all__ = [
    "JOURNAL_VERSION",
    "NOTE_CHARS",
    "ORIGINS",
    "ArmDropped",
    "ArmEliminated",
    "BudgetChanged",
    "CallFailed",
    "CandidateAdded",
    "DemoSet",
    "EvaluationDone",
    "Event",
    "Fact",
    "LeaderChanged",
    "Origin",
    "PoolSizes",
    "ProposalsDone",
    "PullDone",
    "ShareChanged",
    "StatusChanged",
    "StudyFinished",
    "StudyResumed",
    "StudyStarted",
    "StudyStatus",
    "StudyWarning",
    "TaskIdentity",
    "TimePassed",
    "VariantRoundStarted",
    "WarningExample",
]

#: The journal's format; a journal of another version is refused with a clear message. Version 3
#: keeps the settings nested by group and each candidate's kind and parents; version 2 (the
#: settings flat, candidates' origins "proposal" and "variant" with one `parent`) is read too
#: (`engine.settings`, `engine.study.legacy`).
JOURNAL_VERSION = 3

Count = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Index = Annotated[int, msgspec.Meta(ge=0, le=2**31)]
Reward = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]
Money = Annotated[float, msgspec.Meta(ge=0.0, le=1e12)]
Text = Annotated[str, msgspec.Meta(max_length=100_000)]
Note = Annotated[str, msgspec.Meta(max_length=1000)]
NOTE_CHARS = 1000
#: A candidate's kind: from the task's demos (initial), a rewording of a parent (resample), a
#: revision of a parent that read its answers (reflect), two parents combined (merge), the
#: task's human instruction, the user's own, or a parent's instruction with a demo set of its
#: own (demos: the demo search).
Origin = Literal["initial", "resample", "reflect", "merge", "human", "user", "demos"]
ORIGINS: tuple[Origin, ...] = ("initial", "resample", "reflect", "merge", "human", "user", "demos")
#: A demo set: examples of the demo pool, by their place in it, in the order the prompt shows
#: them (None: the study's own scoring demos).
DemoSet = Annotated[list[Index], msgspec.Meta(max_length=64)] | None
Role = Literal["scoring", "proposal", "evaluation"]
#: "quarantined": the service died twice running the study, which runs again only when asked
StudyStatus = Literal[
    "starting", "running", "paused", "stopping", "finished", "failed", "cancelled", "quarantined"
]


class Fact(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Base of the events; ``kind`` is the tag a JSON line carries."""

    @property
    def kind(self) -> str:
        tag = self.__struct_config__.tag
        assert isinstance(tag, str)
        return tag


class TaskIdentity(msgspec.Struct, frozen=True):
    name: str
    fingerprint: str
    metric: str = ""  # the metric the study scored by ("": a journal written before it was kept)
    #: the scheduler's kind of rewards ("": a journal written before it was kept; the metric
    #: and the scoring mode tell it)
    rewards: Literal["", "binary", "continuous"] = ""


class PoolSizes(msgspec.Struct, frozen=True):
    """The sizes of the task's three pools: a journal read back needs no task for its bounds."""

    demo: Count
    scoring: Count
    test: Count


class StudyStarted(Fact, frozen=True, tag="study_started"):
    """The journal's first line. `config` is the settings it was started with (`engine.settings.StudyConfig`),
    opaque to the study; `models` names the endpoints and models it ran with; `pools` the
    sizes of its pools (None in a journal written before they were kept)."""

    version: int
    study_id: str
    engine: str
    created: float
    config: dict[str, Any]
    task: TaskIdentity
    models: dict[str, Any] = {}
    pools: PoolSizes | None = None


class StudyResumed(Fact, frozen=True, tag="study_resumed"):
    at: float


class CandidateAdded(Fact, frozen=True, tag="candidate_added"):
    """A candidate joined the study: its kind (`origin`) and the candidates it was written
    from (`parents`: one for a variant, two for a merge, none for the others)."""

    arm: Index
    instruction: Text
    origin: Origin
    parents: Annotated[list[Index], msgspec.Meta(max_length=8)] = []
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""  # a user's candidate's name
    demos: DemoSet = None  # its own demo set (origin "demos"); None: the study's

    @property
    def parent(self) -> int | None:
        """The first parent (None: the candidate has none)."""
        return self.parents[0] if self.parents else None


class PullDone(Fact, frozen=True, tag="pull_done"):
    """One scoring call's reward (a cached answer costs nothing: `usd` 0, `cached`) and the
    model's answer as the metric read it, cut to the study's `answer_chars`."""

    arm: Index
    example: Index
    reward: Reward
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    usd: Money = 0.0
    latency_s: Seconds = 0.0
    cached: bool = False
    answer: Text = ""
    note: Note = ""  # why the task's checks gave less than 1 (the answer is not JSON, ...)


class ProposalsDone(Fact, frozen=True, tag="proposals_done"):
    """What proposal calls cost and produced (before the candidates they add): each call's
    raw answers (`raw`, cut to the study's `answer_chars`), why answers were rejected
    (`reasons`: reason -> count, summing to `rejected`) and the kind of call (`proposal_kind`; None in
    a journal written before it was kept)."""

    calls: Count
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    usd: Money = 0.0
    cached_calls: Count = 0
    generated: Count = 0
    duplicates: Count = 0
    rejected: Count = 0
    model: str = ""
    raw: list[Text] = []
    reasons: dict[str, Count] = {}
    proposal_kind: Literal["initial", "resample", "reflect", "merge", "demos"] | None = None
    latency_s: Seconds = 0.0  # the calls' round trips, summed


class VariantRoundStarted(Fact, frozen=True, tag="variant_round_started"):
    number: Annotated[int, msgspec.Meta(ge=1)]


class BudgetChanged(Fact, frozen=True, tag="budget_changed"):
    name: BudgetName
    limit: Annotated[float, msgspec.Meta(ge=0.0, le=2**53)] | None
    previous: float | None = None


class ShareChanged(Fact, frozen=True, tag="share_changed"):
    """The share of the scoring budget kept for candidates still to come."""

    share: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)]


class ArmDropped(Fact, frozen=True, tag="arm_dropped"):
    arm: Index


class CallFailed(Fact, frozen=True, tag="call_failed"):
    """A call that failed for good: its pull went back to the pool, it was never scored."""

    role: Role
    error_kind: str
    message: Text
    fatal: bool = False


class TimePassed(Fact, frozen=True, tag="time_passed"):
    """The study's running time so far, across resumes (written about once a second)."""

    seconds: Seconds


class ArmEliminated(Fact, frozen=True, tag="arm_eliminated"):
    arm: Index
    upper: float


class LeaderChanged(Fact, frozen=True, tag="leader_changed"):
    arm: Index
    previous: Index | None
    mean: float


class EvaluationDone(Fact, frozen=True, tag="evaluation_done"):
    """One call of the final evaluation on the held-out test pool; a resumed study does not
    pay for it again."""

    role: Literal["winner", "runner_up", "human", "baseline"]
    instruction: Text
    example: Index
    reward: Reward
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    usd: Money = 0.0
    cached: bool = False
    answer: Text = ""
    note: Note = ""  # as `PullDone`'s
    demos: DemoSet = None  # the candidate's own demo set, when it has one


class WarningExample(msgspec.Struct, frozen=True):
    """One answer shown beside what was expected, in a warning."""

    input: Text
    answer: Text
    expected: Text


class StudyWarning(Fact, frozen=True, tag="warning"):
    """Something the user should know that does not stop the study (``nothing_learned``:
    every candidate scored so far has the same reward), said once, with example answers."""

    code: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,40}$")]
    message: Text
    examples: list[WarningExample] = []


class StatusChanged(Fact, frozen=True, tag="status_changed"):
    status: StudyStatus
    reason: str = ""


class StudyFinished(Fact, frozen=True, tag="finished"):
    status: StudyStatus
    reason: str
    winner: Index | None
    result: dict[str, Any] = {}


Event = (
    StudyStarted
    | StudyResumed
    | CandidateAdded
    | PullDone
    | ProposalsDone
    | VariantRoundStarted
    | BudgetChanged
    | ShareChanged
    | ArmDropped
    | CallFailed
    | TimePassed
    | ArmEliminated
    | LeaderChanged
    | EvaluationDone
    | StatusChanged
    | StudyFinished
    | StudyWarning
)
