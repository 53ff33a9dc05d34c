"""What a study knows, and the one way it changes: `StudyState.apply(event)`.

The live study and a resumed one run the same code: the study emits each event (applied, then
handed to its observers, the journal among them), and resume applies the journal's events to a
fresh state before the study goes on. The policy is part of the state: a candidate added is an
arm added, a reward observed is a pull observed (the policy tells a replayed observation from
one it handed out). What is going on right now (calls in flight, pause, the clock) is not a
fact and lives in `engine.study.activity`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import JournalError
from engine.propose import instruction_key
from engine.search import Certificate
from engine.search.policy import Policy, Pull
from engine.study.answers import AnswerBook
from engine.study.budgets import Budgets, Spend
from engine.study.events import (
    ArmDropped,
    ArmEliminated,
    BudgetChanged,
    CallFailed,
    CandidateAdded,
    EvaluationDone,
    Event,
    LeaderChanged,
    ProposalsDone,
    PullDone,
    ShareChanged,
    StatusChanged,
    StudyFinished,
    StudyResumed,
    StudyStarted,
    StudyStatus,
    StudyWarning,
    TimePassed,
    VariantRoundStarted,
)
from engine.study.settings import StudySettings

__all__ = ["Arm", "ProposalTally", "StudyState", "prompt_key"]

_ANSWERS_KEPT = 8  # the latest answers, for a warning's examples


@dataclass(slots=True)
class Arm:
    """A candidate: its number (the policy's arm), text, kind (`origin`) and the candidates it
    was written from."""

    index: int
    instruction: str
    origin: str
    parents: tuple[int, ...] = ()
    name: str = ""
    demos: tuple[int, ...] | None = None  # its own demo set (the demo pool's); None: the study's

    @property
    def parent(self) -> int | None:
        return self.parents[0] if self.parents else None

    @property
    def prompt(self) -> str:
        """What tells it from another candidate: its instruction, and its demos when it has
        its own (`prompt_key`)."""
        return prompt_key(self.instruction, self.demos)


def prompt_key(instruction: str, demos: Sequence[int] | None) -> str:
    """A candidate's prompt as a key: the instruction alone, or with its own demo set (two
    candidates may share an instruction and differ in their demos)."""
    if demos is None:
        return instruction
    return f"{instruction}\x1fdemos {','.join(map(str, demos))}"


@dataclass(slots=True)
class ProposalTally:
    """The proposal calls of one kind: what they cost and produced."""

    calls: int = 0
    tokens: int = 0
    usd: float = 0.0
    seconds: float = 0.0  # the calls' round trips, summed
    generated: int = 0
    rejected: int = 0
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "tokens": self.tokens,
            "usd": round(self.usd, 6),
            "seconds": round(self.seconds, 3),
            "generated": self.generated,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "reasons": dict(self.reasons),
        }


class StudyState:
    """The facts of one study so far; change it only with `apply`."""

    def __init__(self, settings: StudySettings, policy: Policy) -> None:
        self.settings = settings
        self.policy = policy
        self.study_id = ""
        self.status: StudyStatus = "starting"
        self.reason = ""
        self.arms: list[Arm] = []
        self.keys: set[str] = set()  # `instruction_key` of every candidate
        self.prompts: set[str] = set()  # `prompt_key` of every candidate
        self.dropped: set[int] = set()
        self.eliminated: set[int] = set()
        self.leader: int | None = None
        self.spend = Spend()
        self.budgets = Budgets(settings.budgets.as_dict())
        self.share = settings.proposals.new_candidate_share
        self.variant_rounds_done = 0
        self.generated = self.duplicates = self.rejected = 0
        self.rejected_reasons: dict[str, int] = {}
        self.proposal_kinds: dict[str, ProposalTally] = {}  # by kind of call
        errors = settings.proposals.reflection_errors
        self.book = AnswerBook(wrong=2 * errors, right=errors)  # for reflections, Pareto parents
        self.warnings: list[StudyWarning] = []
        # the rewards seen so far, and the latest answers (arm, example, answer) with text
        self.reward_low = 1.0
        self.reward_high = 0.0
        self.answers: list[tuple[int, int, str]] = []
        self.failures = 0
        self.failure_kinds: dict[str, int] = {}
        self.first_errors: dict[str, str] = {}  # error kind -> the first such failure's message
        self.fatal: str | None = None
        # prompt (`prompt_key`) -> test example -> reward
        self.evaluated: dict[str, dict[int, float]] = {}
        self.result: dict[str, Any] | None = None
        self._certified: tuple[tuple[int, ...], Certificate] | None = None  # when, and what

    def apply(self, event: Event) -> None:
        """Change the state by one fact (live, or replayed from a journal)."""
        _APPLY[type(event)](self, event)

    def certificate(self) -> Certificate:
        """What the data prove about the policy's pick now; read again only after new results
        (displays ask several times a second)."""
        seen = (self.policy.pulls_used, len(self.arms), len(self.dropped))
        if self._certified is None or self._certified[0] != seen:
            self._certified = (seen, self.policy.certificate())
        return self._certified[1]

    def knows(self, instruction: str) -> bool:
        """Is `instruction` (up to case, spacing and punctuation) a candidate already?"""
        return instruction_key(instruction) in self.keys

    # -- one method per fact ---------------------------------------------------------------------

    def _started(self, event: StudyStarted) -> None:
        self.study_id = event.study_id

    def _resumed(self, event: StudyResumed) -> None:
        pass  # a mark in the journal: the study went on from here

    def _candidate(self, event: CandidateAdded) -> None:
        arm = self.policy.add_arm()
        if arm != event.arm or arm != len(self.arms):
            raise JournalError(
                f"candidate {event.arm} out of order: the study has {len(self.arms)} candidates"
            )
        parents = tuple(event.parents)
        demos = tuple(event.demos) if event.demos is not None else None
        added = Arm(arm, event.instruction, event.origin, parents, event.name, demos)
        self.arms.append(added)
        self.keys.add(instruction_key(event.instruction))
        self.prompts.add(added.prompt)
        self.book.add_arm()

    def _pull(self, event: PullDone) -> None:
        self._check_arm(event.arm)
        self.policy.observe(Pull(event.arm, event.example), event.reward)
        self.book.observe(event.arm, event.example, event.reward, event.answer)
        self.reward_low = min(self.reward_low, event.reward)
        self.reward_high = max(self.reward_high, event.reward)
        if event.answer:
            self.answers = [
                *self.answers[-(_ANSWERS_KEPT - 1) :],
                (event.arm, event.example, event.answer),
            ]
        self.spend.add_call(
            "scoring",
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            usd=event.usd,
            cached=event.cached,
        )

    def _proposals(self, event: ProposalsDone) -> None:
        spend = self.spend
        spend.proposal_calls += event.calls
        spend.cached_calls += event.cached_calls
        paid = event.calls > event.cached_calls
        tokens = event.prompt_tokens + event.completion_tokens if paid else 0
        usd = event.usd if paid else 0.0
        spend.tokens += tokens
        spend.usd += usd
        spend.proposal_tokens += tokens
        spend.proposal_usd += usd
        tally = self.proposal_kinds.setdefault(event.proposal_kind or "unknown", ProposalTally())
        tally.calls += event.calls
        tally.tokens += tokens
        tally.usd += usd
        tally.seconds += event.latency_s
        tally.generated += event.generated
        tally.rejected += event.rejected
        tally.duplicates += event.duplicates
        for reason, count in event.reasons.items():
            tally.reasons[reason] = tally.reasons.get(reason, 0) + count
        self.generated += event.generated
        self.duplicates += event.duplicates
        self.rejected += event.rejected
        for reason, count in event.reasons.items():
            self.rejected_reasons[reason] = self.rejected_reasons.get(reason, 0) + count

    def _variant_round(self, event: VariantRoundStarted) -> None:
        self.variant_rounds_done = max(self.variant_rounds_done, event.number)

    def _budget(self, event: BudgetChanged) -> None:
        self.budgets.set(event.name, event.limit)

    def _share(self, event: ShareChanged) -> None:
        self.share = event.share

    def _drop(self, event: ArmDropped) -> None:
        self._check_arm(event.arm)
        self.policy.drop(event.arm)
        self.dropped.add(event.arm)

    def _failure(self, event: CallFailed) -> None:
        self.failures += 1
        self.spend.failed_calls += 1
        self.failure_kinds[event.error_kind] = self.failure_kinds.get(event.error_kind, 0) + 1
        self.first_errors.setdefault(event.error_kind, event.message)

    def _time(self, event: TimePassed) -> None:
        self.spend.seconds = max(self.spend.seconds, event.seconds)

    def _eliminated(self, event: ArmEliminated) -> None:
        self.eliminated.add(event.arm)

    def _leader(self, event: LeaderChanged) -> None:
        self.leader = event.arm

    def _evaluation(self, event: EvaluationDone) -> None:
        key = prompt_key(event.instruction, event.demos)
        self.evaluated.setdefault(key, {})[event.example] = event.reward
        self.spend.add_call(
            "evaluation",
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            usd=event.usd,
            cached=event.cached,
        )

    def _status(self, event: StatusChanged) -> None:
        self.status = event.status
        if event.reason:
            self.reason = event.reason
        if event.status == "failed" and self.fatal is None:
            self.fatal = event.reason

    def _finished(self, event: StudyFinished) -> None:
        self.status = event.status
        self.reason = event.reason
        self.result = event.result

    def _warning(self, event: StudyWarning) -> None:
        self.warnings.append(event)

    def warned(self, code: str) -> bool:
        return any(warning.code == code for warning in self.warnings)

    def _check_arm(self, arm: int) -> None:
        if not 0 <= arm < len(self.arms):
            raise JournalError(f"no candidate {arm}: the study has {len(self.arms)}")


def _table() -> dict[type[Any], Callable[[StudyState, Any], None]]:
    return {
        StudyStarted: StudyState._started,
        StudyResumed: StudyState._resumed,
        CandidateAdded: StudyState._candidate,
        PullDone: StudyState._pull,
        ProposalsDone: StudyState._proposals,
        VariantRoundStarted: StudyState._variant_round,
        BudgetChanged: StudyState._budget,
        ShareChanged: StudyState._share,
        ArmDropped: StudyState._drop,
        CallFailed: StudyState._failure,
        TimePassed: StudyState._time,
        ArmEliminated: StudyState._eliminated,
        LeaderChanged: StudyState._leader,
        EvaluationDone: StudyState._evaluation,
        StatusChanged: StudyState._status,
        StudyFinished: StudyState._finished,
        StudyWarning: StudyState._warning,
    }


_APPLY = _table()
