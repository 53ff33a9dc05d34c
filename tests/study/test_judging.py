"""The judge scorer against the simulator acting as a judge with known answers (it says "yes"
exactly when the answer matches a reference): its verdicts equal exact match on the same
answers, a reply out of the rubric's form is a failed call (never a 0), and rubric files are
checked where they enter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.app import StudyConfig, execute, prepare
from engine.app.estimate import estimate_spend
from engine.errors import ConfigError, EndpointError
from engine.llm.client import LLMClient
from engine.llm.endpoint import EndpointConfig
from engine.propose import Templates
from engine.sim import SimConfig, serve_sim
from engine.study.budgets import Price, PriceTable
from engine.study.judging import RUBRICS, JudgeScorer, Rubric, load_rubric
from engine.study.prompting import ScoringPrompt
from engine.study.scoring import ClientScorer, Score
from engine.task import load_task, split_task

TASK = "larger_number"


def test_replies_are_parsed_strictly() -> None:
    yes_no = RUBRICS["truthful_informative"]
    assert [yes_no.parse(r) for r in ("yes", "No.", " YES\n", "Answer: no")] == [1, 0, 1, 0]
    assert [yes_no.parse(r) for r in ("", "yes, because", "maybe", "1")] == [None] * 4
    scale = Rubric(template="{input} {answer} {expected}", reply="scale", low=1, high=5)
    assert [scale.parse(r) for r in ("1", "5", "3", "4.5")] == [0.0, 1.0, 0.5, 0.875]
    assert [scale.parse(r) for r in ("0", "6", "three", "3/5")] == [None] * 4


def test_rubric_files_are_checked(tmp_path: Path) -> None:
    good = tmp_path / "r.toml"
    good.write_text('template = "Q: {input}\\nA: {answer}\\nRef: {expected}"\nreply = "yes_no"\n')
    assert load_rubric(str(good)).reply == "yes_no"
    bad = tmp_path / "bad.toml"
    bad.write_text('template = "Q: {question}"\n')
    with pytest.raises(ConfigError, match=re.escape("only {input}, {answer} and {expected}")):
        load_rubric(str(bad))
    with pytest.raises(ConfigError, match="neither a ready rubric"):
        load_rubric("no_such_rubric")


@pytest.mark.anyio
async def test_the_judge_agrees_with_exact_match_and_a_bad_reply_is_a_failure() -> None:
    task = load_task(TASK, seed=3)
    pool = split_task(task, seed=3, scoring_size=30).scoring
    async with serve_sim(SimConfig(tasks=(task,), seed=3)) as server:
        endpoint = EndpointConfig(name="target", base_url=server.base_url, model="sim-1")
        judge_end = EndpointConfig(name="judge", base_url=server.base_url, model="sim-1")
        async with LLMClient(endpoint) as target, LLMClient(judge_end) as judge:
            asking = ScoringPrompt(Templates())
            exact = ClientScorer(target, metric="exact_match", asking=asking)
            judged = JudgeScorer(target, judge, RUBRICS["matches_reference"], asking)
            instruction = task.human_instruction or "Write the larger number."
            verdicts, truths = [], []
            for example in pool:
                verdict = await judged.score(instruction, example)
                verdicts.append(verdict.reward)
                truths.append((await exact.score(instruction, example)).reward)
                assert verdict.answer and verdict.prompt_tokens > 0
            assert verdicts == truths and 0 < sum(verdicts) < len(verdicts)
            unreadable = JudgeScorer(target, judge, Rubric(template="Grade {answer}."), asking)
            with pytest.raises(EndpointError, match="not in the rubric's form"):
                await unreadable.score(instruction, pool[0])


@pytest.mark.anyio
async def test_a_judged_study_runs_with_its_own_judge_client(tmp_path: Path) -> None:
    config = StudyConfig.of(
        task=TASK,
        scoring="judge",
        judge_rubric="matches_reference",
        journal=str(tmp_path / "j.jsonl"),
        no_cache=True,
        scoring_size=30,
        test_size=10,
        initial_candidates=4,
        variant_rounds=0,
        budget_scoring_calls=60,
        seed=3,
    )
    result = await execute(prepare(config), say=lambda _: None)
    assert result.ok and result.spend.scoring_calls == 60
    assert max(c.mean for c in result.candidates) > 0
    with pytest.raises(ConfigError, match="judge scoring needs a rubric"):
        prepare(config.replace(judge_rubric=None, journal=str(tmp_path / "k.jsonl")))


def test_a_judges_tokens_are_paid_at_the_judges_price() -> None:
    prices = PriceTable({"target": Price(1.0, 2.0), "judge": Price(10.0, 20.0)})
    score = Score(1.0, prompt_tokens=1_100, completion_tokens=60, model="target")
    judged = Score(
        1.0, prompt_tokens=1_100, completion_tokens=60, model="target", judge=("judge", 100, 10)
    )
    assert score.usd(prices, "x") == pytest.approx((1_100 * 1.0 + 60 * 2.0) / 1e6)
    target, judge = (1_000 * 1.0 + 50 * 2.0) / 1e6, (100 * 10.0 + 10 * 20.0) / 1e6
    assert judged.usd(prices, "x") == pytest.approx(target + judge)
    assert Score(1.0, prompt_tokens=9, cached=True, judge=("judge", 9, 0)).usd(prices, "x") == 0


def test_the_estimate_counts_the_judges_calls() -> None:
    task = load_task(TASK, seed=3)
    splits = split_task(task, seed=3, scoring_size=30, test_size=10)
    prices = PriceTable({"sim-1": Price(1.0, 1.0), "judge-1": Price(100.0, 100.0)})
    plain = StudyConfig.of(task=TASK, model="sim-1", scoring_size=30, test_size=10)
    judged = plain.replace(scoring="judge", judge_rubric="matches_reference", judge_model="judge-1")
    kwargs = {"human": True, "prices": prices, "scoring_model": "sim-1", "proposal_model": "sim-1"}
    without, with_judge = (
        estimate_spend(c.study(), c.scoring, splits, api="chat", judge_model="judge-1", **kwargs)
        for c in (plain, judged)
    )
    assert with_judge.judged and with_judge.priced and not without.judged
    assert with_judge.expected_tokens > without.expected_tokens
    assert with_judge.expected_usd > 10 * without.expected_usd  # the judge's price dominates
    assert any("also asks the judge" in line for line in with_judge.lines())
    unpriced = estimate_spend(
        judged.study(), judged.scoring, splits, api="chat", judge_model="free-1", **kwargs
    )
    assert not unpriced.priced


@pytest.mark.anyio
async def test_the_judge_takes_the_targets_key_from_its_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("sk-judged-study-0123\n")
    task = load_task(TASK, seed=3)
    sim = SimConfig(tasks=(task,), seed=3, api_keys=("sk-judged-study-0123",))
    async with serve_sim(sim) as server:
        config = StudyConfig.of(
            task=TASK,
            base_url=server.base_url,
            api_key_file=str(key),
            scoring="judge",
            judge_rubric="matches_reference",
            journal=str(tmp_path / "j.jsonl"),
            no_cache=True,
            scoring_size=20,
            test_size=5,
            initial_candidates=2,
            variant_rounds=0,
            budget_scoring_calls=10,
            seed=3,
        )
        result = await execute(prepare(config, environ={}), say=lambda _: None)
    assert result.ok, result.error
    assert result.spend.scoring_calls == 10
