"""Journal records and replay, the response cache, instruction normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import JournalError
from engine.propose import normalise_instruction
from engine.study.budgets import Spend
from engine.study.cache import CachedScorer, ResponseCache
from engine.study.config import StudyConfig
from engine.study.interfaces import Score
from engine.study.journal import JournalRecorder, replay_journal
from engine.task.types import Example, Task
from tests.study.fakes import FakePolicy, FakeProposer, FakeScorer, pool


def write_journal(path: Path) -> None:
    recorder = JournalRecorder(path)
    task = Task("fake", pool(5))
    recorder.header(study_id="abc", config=StudyConfig(task="fake"), task=task, models={})
    recorder.candidate(0, "first q50", "proposal", None)
    recorder.candidate(1, "second q60", "variant", 0)
    recorder.observation(0, 3, 1.0, 10, 2, 0.001, 0.1, False)
    recorder.observation(1, 3, 0.0, 10, 2, 0.001, 0.1, True)
    recorder.proposals(1, 130, 0.002, 0)
    recorder.budget("scoring_calls", 99)
    recorder.variant_round(1)
    recorder.drop(1)
    recorder.failure("server", "boom")
    recorder.progress(Spend(seconds=4.5))
    recorder.close()


def test_replay_gives_back_candidates_observations_and_spend(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write_journal(path)
    replay = replay_journal(path)
    state = replay.state
    assert replay.study_id == "abc" and replay.config.task == "fake"
    assert [a.instruction for a in state.arms] == ["first q50", "second q60"]
    assert state.arms[1].parent == 0 and state.arms[1].origin == "variant"
    assert state.observations == [(0, 3, 1.0), (1, 3, 0.0)]
    assert state.budgets == {"scoring_calls": 99}
    assert state.variant_rounds_done == 1 and state.dropped == [1]
    spend = state.spend
    assert (spend.scoring_calls, spend.cached_calls, spend.proposal_calls) == (2, 1, 1)
    assert spend.tokens == 12 + 130 and spend.failed_calls == 1 and spend.seconds == 4.5


def test_a_torn_last_line_is_tolerated_and_a_torn_middle_line_is_not(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    write_journal(path)
    with path.open("ab") as file:
        file.write(b'{"type": "observation", "arm": 0, "exa')
    assert len(replay_journal(path).state.observations) == 2
    lines = path.read_bytes().split(b"\n")
    lines.insert(2, b"{torn")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(JournalError, match="line 3"):
        replay_journal(path)


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"type": "candidate"}\n')
    with pytest.raises(JournalError, match="no header"):
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
