"""The journal (events written, read back typed, torn tails repaired), the response cache,
instruction normalisation."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engine.errors import JournalError
from engine.propose import normalise_instruction
from engine.settings import StudyConfig
from engine.study.cache import CachedScorer, ResponseCache
from engine.study.events import (
    JOURNAL_VERSION,
    ArmDropped,
    BudgetChanged,
    CallFailed,
    CandidateAdded,
    Event,
    ProposalsDone,
    PullDone,
    StudyStarted,
    TaskIdentity,
    TimePassed,
    VariantRoundStarted,
)
from engine.study.journal import JournalWriter, replay_journal, task_fingerprint
from engine.study.scoring import Score
from engine.study.state import StudyState
from engine.task.types import Example, Task
from tests.study.fakes import FakePolicy, FakeProposer, FakeScorer, pool


def started(study_id: str = "abc") -> StudyStarted:
    return StudyStarted(
        version=JOURNAL_VERSION,
        study_id=study_id,
        engine="test",
        created=0.0,
        config=StudyConfig.of(task="fake").to_json(),
        task=TaskIdentity("fake", task_fingerprint(Task("fake", pool(5)))),
    )


EVENTS: list[Event] = [
    started(),
    CandidateAdded(arm=0, instruction="first q50", origin="initial"),
    CandidateAdded(arm=1, instruction="second q60", origin="resample", parents=[0]),
    PullDone(arm=0, example=3, reward=1.0, prompt_tokens=10, completion_tokens=2, usd=0.001),
    PullDone(arm=1, example=3, reward=0.0, prompt_tokens=10, completion_tokens=2, cached=True),
    ProposalsDone(calls=1, prompt_tokens=100, completion_tokens=30, usd=0.002, generated=5),
    BudgetChanged(name="scoring_calls", limit=99, previous=None),
    VariantRoundStarted(number=1),
    ArmDropped(arm=1),
    CallFailed(role="scoring", error_kind="server", message="boom"),
    TimePassed(seconds=4.5),
]


def write_journal(path: Path, events: list[Event] = EVENTS) -> None:
    writer = JournalWriter(path)
    for event in events:
        writer(event)
    writer.close()


def replayed_state(path: Path) -> StudyState:
    state = StudyState(StudyConfig.of(task="fake").study(), FakePolicy(5))
    for event in replay_journal(path).events:
        state.apply(event)
    return state


def test_replay_gives_back_candidates_observations_and_spend(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write_journal(path)
    replay = replay_journal(path)
    assert replay.study_id == "abc" and replay.started.config["task"]["name"] == "fake"
    assert replay.events == EVENTS and replay.counts() == (2, 2)
    state = replayed_state(path)
    assert [a.instruction for a in state.arms] == ["first q50", "second q60"]
    assert state.arms[1].parent == 0 and state.arms[1].origin == "resample"
    assert state.policy.observed == [(0, 3, 1.0), (1, 3, 0.0)]  # type: ignore[attr-defined]
    assert state.budgets.limit("scoring_calls") == 99
    assert state.variant_rounds_done == 1 and state.dropped == {1}
    spend = state.spend
    assert (spend.scoring_calls, spend.cached_calls, spend.proposal_calls) == (2, 1, 1)
    assert spend.tokens == 12 + 130 and spend.failed_calls == 1 and spend.seconds == 4.5


def test_a_torn_last_line_is_tolerated_and_a_torn_middle_line_is_not(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write_journal(path)
    with path.open("ab") as file:
        file.write(b'{"kind": "pull_done", "arm": 0, "exa')
    assert replay_journal(path).counts() == (2, 2)
    lines = path.read_bytes().split(b"\n")
    lines.insert(2, b"{torn")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(JournalError, match="line 3"):
        replay_journal(path)


def test_appending_cuts_a_torn_tail_off_and_keeps_it(tmp_path: Path) -> None:
    """Resume after a crash mid-write, then crash again: the second resume still reads."""
    path = tmp_path / "j.jsonl"
    write_journal(path)
    tail = b'{"kind": "pull_done", "arm": 0, "exa'
    for round_ in range(3):
        with path.open("ab") as file:
            file.write(tail)  # a crash in the middle of a write
        write_journal(path, [TimePassed(seconds=5.0 + round_)])  # the next resume appends
        assert (tmp_path / "j.jsonl.torn").read_bytes() == tail
        assert replayed_state(path).spend.seconds == 5.0 + round_
    # a whole last record whose newline was lost is kept, not cut
    with path.open("ab") as file:
        file.write(b'{"kind":"time_passed","seconds":9.0}')
    write_journal(path, [TimePassed(seconds=10.0)])
    times = [e.seconds for e in replay_journal(path).events if isinstance(e, TimePassed)]
    assert times[-2:] == [9.0, 10.0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"kind": "pull_done", "arm": "x", "example": 1, "reward": 1.0}', r"\$\.arm"),
        (b'{"kind": "pull_done", "arm": 0, "example": 1, "reward": 7.5}', r"\$\.reward"),
        (b'{"kind": "pull_done", "arm": 0, "example": 1, "reward": -3.0}', r"\$\.reward"),
        (b'{"kind": "no_such_fact"}', r"\$\.kind"),
        (b"[1, 2]", "line 4"),
    ],
)
def test_a_record_with_a_wrong_type_or_range_is_refused_with_its_line_and_field(
    tmp_path: Path, line: bytes, message: str
) -> None:
    path = tmp_path / "j.jsonl"
    write_journal(path, EVENTS[:3])
    with path.open("ab") as file:
        file.write(line + b"\n")
    with pytest.raises(JournalError, match=message) as caught:
        replay_journal(path)
    assert "line 4" in str(caught.value)


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"kind": "candidate_added", "arm": 0, "instruction": "x", "origin": "user"}\n')
    with pytest.raises(JournalError, match="no header"):
        replay_journal(path)


def test_a_journal_of_another_format_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    path.write_text('{"type": "header", "version": 1, "study_id": "x"}\n')
    with pytest.raises(JournalError, match=r"older ape-engine \(journal format 1\)"):
        replay_journal(path)
    write_journal(path := tmp_path / "new.jsonl", [msgspec.structs.replace(started(), version=99)])
    with pytest.raises(JournalError, match="journal format 99"):
        replay_journal(path)


@pytest.mark.anyio
async def test_the_response_cache_answers_a_repeated_request_for_free(tmp_path: Path) -> None:
    scorer = FakeScorer()
    example = Example("x", ("y",), key="3")
    cache = ResponseCache(tmp_path / "cache.jsonl")
    cached = CachedScorer(scorer, cache, {"model": "sim-1"})
    first = await cached.score("do it q90", example)
    cache.close()
    again = CachedScorer(scorer, ResponseCache(tmp_path / "cache.jsonl"), {"model": "sim-1"})
    second = await again.score("do it q90", example)
    other = CachedScorer(scorer, ResponseCache(tmp_path / "cache.jsonl"), {"model": "other"})
    await other.score("do it q90", example)
    assert scorer.calls == 2
    assert isinstance(second, Score) and second.cached and not first.cached
    assert second.reward == first.reward and second.prompt_tokens == first.prompt_tokens


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('  "Write the antonym of the word."  ', "Write the antonym of the word."),
        ("The instruction was: reverse the word.\n\nInput: x", "reverse the word."),
        (" to add the two numbers\nand say the sum", "to add the two numbers and say the sum"),
        ("Input: 5\nOutput: 6", ""),
    ],
)
def test_normalise_instruction(raw: str, expected: str) -> None:
    assert normalise_instruction(raw) == expected


def test_fakes_are_consistent() -> None:
    policy = FakePolicy(4)
    assert policy.add_arm() == 0
    pulls = policy.select(2)
    policy.cancel(pulls[1])
    assert policy.select(1)[0].example == pulls[1].example
    assert FakeProposer([1]).qualities == [1]
