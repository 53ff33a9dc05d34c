"""A journal written by the version before the settings were nested (format 2, settings flat)
reads back and resumes: its settings land in their groups, its calls are not paid again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.app import execute, prepare_resume
from engine.app.prepare import config_of
from engine.app.records import read_record
from engine.study.journal import replay_journal

FIXTURE = Path(__file__).parent.parent / "fixtures" / "journal_v2.jsonl"  # main at 1f16493


def test_a_version_2_journal_reads_back_with_its_settings_in_their_groups() -> None:
    replay = replay_journal(FIXTURE)
    assert replay.started.version == 2 and "budget_scoring_calls" in replay.started.config
    config = config_of(replay)
    assert config.task.name == "larger_number" and config.budgets.scoring_calls == 120
    assert (config.search.scoring_size, config.proposals.initial_candidates) == (40, 4)
    assert (config.search.seed, config.throughput.concurrency) == (7, 4)
    record = read_record(FIXTURE)
    assert record.status == "finished" and record.spend.scoring_calls == 120


@pytest.mark.anyio
async def test_a_version_2_journal_resumes_and_pays_for_nothing_twice(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    shutil.copy(FIXTURE, journal)
    before = replay_journal(journal).counts()[1]
    prepared = prepare_resume(journal, budget_scoring_calls=200)
    assert prepared.config.budgets.scoring_calls == 200
    result = await execute(prepared, say=lambda _: None)
    assert before == 120 < result.spend.scoring_calls <= 200  # its stopping rule may end it
    after = replay_journal(journal)  # refused if a (candidate, example) were scored twice
    assert after.started.version == 2  # the header stays as it was written
    assert after.counts()[1] == result.spend.scoring_calls
