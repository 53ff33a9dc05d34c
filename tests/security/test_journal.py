"""A journal read back is data from disk: checked by type and range, never a traceback. A torn
last line (a crash mid-write) is cut off before the next append, so a second and a third resume
still work; a record with a wrong type or value is refused naming its line; and whatever the
bytes, reading and resuming either works or says why with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.app import StudyConfig, execute, prepare
from engine.app.execute import _policy  # the policy a resumed study replays into
from engine.app.prepare import prepare_resume
from engine.errors import EngineError
from engine.study.journal import replay_journal
from engine.study.state import StudyState

pytestmark = pytest.mark.integration

SMALL: dict[str, Any] = {
    "task": "larger_number",
    "no_cache": True,
    "budget_scoring_calls": 60,
    "initial_candidates": 4,
    "candidates_per_call": 2,
    "variant_rounds": 0,
    "scoring_size": 30,
    "test_size": 8,
    "policy": "uniform",
    "concurrency": 4,
}


@pytest.fixture(scope="module")
def journal_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The lines of a real journal: a small study on the built-in simulator, finished."""
    path = tmp_path_factory.mktemp("journal") / "study.jsonl"
    config = StudyConfig.of(**{**SMALL, "journal": str(path)})
    result = anyio.run(lambda: execute(prepare(config), say=lambda _: None))
    assert result.status == "finished"
    return path.read_bytes().splitlines()


def write(path: Path, lines: list[bytes], tail: bytes = b"") -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines) + tail)
    return path


def resume(path: Path, **changes: Any) -> Any:
    """Read the journal back as a resume does, and apply it to a fresh state."""
    prepared = prepare_resume(path, **changes)
    state = StudyState(prepared.config.study(), _policy(prepared))
    for event in prepared.replay.events if prepared.replay else ():
        state.apply(event)
    return prepared, state


@pytest.mark.anyio
async def test_a_torn_tail_is_cut_and_kept_before_each_resume_and_three_resumes_work(
    tmp_path: Path, journal_lines: list[bytes]
) -> None:
    path = write(tmp_path / "j.jsonl", journal_lines[:-1])  # stopped before its result
    scored = sum(b'"kind":"pull_done"' in line for line in journal_lines)
    for round_ in range(3):
        tail = b'{"kind":"pull_done","arm":1,"exam' + b"x" * round_
        with path.open("ab") as file:  # a crash in the middle of a write
            file.write(tail)
        budget = scored + 10 * (round_ + 1)
        result = await execute(prepare_resume(path, budget_scoring_calls=budget), say=print)
        assert result.status == "finished", result.reason
        assert result.spend.scoring_calls == budget
        kept = tmp_path / ("j.jsonl.torn" + (f".{round_}" if round_ else ""))
        assert kept.read_bytes() == tail  # each tail kept in a file of its own
        path.write_bytes(b"".join(line + b"\n" for line in path.read_bytes().splitlines()[:-1]))
    replay = replay_journal(path)
    assert replay.counts()[1] == scored + 30
    assert not (tmp_path / "j.jsonl.torn.3").exists()


BAD_RECORDS = [
    (b'{"kind":"pull_done","arm":"x","example":1,"reward":1.0}', r"\$\.arm"),
    (b'{"kind":"pull_done","arm":0,"example":1,"reward":7.5}', r"\$\.reward"),
    (b'{"kind":"pull_done","arm":0,"example":1,"reward":-3.0}', r"\$\.reward"),
    (b'{"kind":"pull_done","arm":0,"example":-1,"reward":1.0}', r"\$\.example"),
    (b'{"kind":"pull_done","arm":0,"example":1,"reward":1.0,"usd":1e300}', r"\$\.usd"),
    (b'{"kind":"pull_done","arm":99,"example":1,"reward":1.0}', "candidate 99"),
    (b'{"kind":"pull_done","arm":0,"example":29999,"reward":1.0}', "example 29999"),
    (b'{"kind":"candidate_added","arm":7,"instruction":"x","origin":"user"}', "out of order"),
    (b'{"kind":"budget_changed","name":"everything","limit":5}', r"\$\.name"),
    (
        b'{"kind":"evaluation_done","role":"winner","instruction":"x","example":500,"reward":1.0}',
        "example 500",
    ),
    (b'{"kind":"time_passed","seconds":1e300}', r"\$\.seconds"),
    (b'{"kind":"study_started","version":2}', r"\$\.study_id|second study|line"),
    (b'{"kind":"no_such_fact"}', r"\$\.kind"),
    (b"[1, 2]", "line"),
    (b"\xff\xfe not text", "line"),
]


@pytest.mark.parametrize(("line", "message"), BAD_RECORDS)
def test_a_bad_record_is_refused_with_its_line_and_nothing_changes(
    tmp_path: Path, journal_lines: list[bytes], line: bytes, message: str
) -> None:
    lines = journal_lines[:-1]
    lines.insert(len(lines) // 2, line)
    path = write(tmp_path / "j.jsonl", lines)
    before = path.read_bytes()
    with pytest.raises(EngineError, match=message) as caught:
        resume(path)
    assert f"line {len(lines) // 2 + 1}" in str(caught.value)
    assert path.read_bytes() == before
    assert not (tmp_path / "j.jsonl.torn").exists()


def fields_of(lines: list[bytes]) -> Iterator[tuple[int, str]]:
    for index, line in enumerate(lines):
        record = orjson.loads(line)
        for name in record:
            if name != "kind":
                yield index, name


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


def check_refusal_or_resume(path: Path) -> None:
    """Resuming either works or raises one `EngineError`; a refusal changes no file."""
    before = sorted((p.name, p.read_bytes()) for p in path.parent.iterdir())
    refusal = ""
    try:
        resume(path)
    except EngineError as error:
        refusal = str(error) or "(empty)"
    if refusal:
        assert "\n" not in refusal.strip(), refusal
        assert sorted((p.name, p.read_bytes()) for p in path.parent.iterdir()) == before


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400))
def test_random_bytes_are_a_journal_or_a_refusal(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("bytes") / "j.jsonl"
    path.write_bytes(data)
    check_refusal_or_resume(path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_record_of_the_right_shape_with_a_wrong_value_is_a_refusal(
    tmp_path_factory: pytest.TempPathFactory, journal_lines: list[bytes], data: st.DataObject
) -> None:
    lines = journal_lines[:-1]
    index, name = data.draw(st.sampled_from(list(fields_of(lines))))
    record = orjson.loads(lines[index])
    record[name] = data.draw(json_values)
    changed = [*lines[:index], _encode(record), *lines[index + 1 :]]
    path = write(tmp_path_factory.mktemp("values") / "j.jsonl", changed)
    check_refusal_or_resume(path)


def _encode(record: dict[str, Any]) -> bytes:
    import json

    return json.dumps(record).encode()  # integers past 64 bits, as a damaged file may hold


def resume_cli(*argv: str) -> int:
    import argparse

    from engine.cli import resume as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.main(parser.parse_args(list(argv)))


def test_a_finished_study_resumes_only_with_a_raised_budget(
    tmp_path: Path, journal_lines: list[bytes]
) -> None:
    """A resume that changes nothing (no budget, or the same one) is refused and writes
    nothing: it would only append another `finished` record."""
    path = write(tmp_path / "j.jsonl", journal_lines)
    before = path.read_bytes()
    for flags in ([], ["--budget-scoring-calls", "60"], ["--budget-scoring-calls", "50"]):
        with pytest.raises(EngineError, match="already finished; raise a budget"):
            resume_cli(str(path), *flags)
        assert path.read_bytes() == before, flags
    assert resume_cli(str(path), "--budget-scoring-calls", "70") == 0
    finished = [line for line in path.read_bytes().splitlines() if b'"kind":"finished"' in line]
    assert len(finished) == 2 and path.read_bytes().startswith(before)
