"""Budgets, prices, intervals and the config file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.app.execute import endpoint_config
from engine.errors import ConfigError
from engine.settings import Endpoint, StudyConfig, load_config_file
from engine.study.budgets import Budgets, Price, PriceTable, Spend, check_limit
from engine.study.intervals import mean_interval, student_t_quantile, wilson_interval
from engine.study.scheduler import reward_kind
from engine.task import load_task


def test_the_first_budget_reached_is_named_but_the_scoring_calls_are_the_policys() -> None:
    budgets = Budgets({"scoring_calls": 10, "usd": 0.5})
    spend = Spend(scoring_calls=9)
    assert budgets.reached(spend) is None
    assert budgets.reached(Spend(scoring_calls=10)) is None  # the policy stops at them
    spend.usd = 0.5
    assert budgets.reached(spend) == "usd"
    assert budgets.set("usd", None) == 0.5
    assert budgets.reached(spend) is None


def test_a_bad_live_budget_is_refused_with_its_name_and_range() -> None:
    with pytest.raises(ConfigError, match="unknown budget 'calls'"):
        check_limit("calls", 3)
    with pytest.raises(ConfigError, match=r"budget usd: Expected `float` >= 0.0, got -1 \(its"):
        check_limit("usd", -1)
    assert check_limit("scoring_calls", 7) == 7.0 and check_limit("usd", None) is None


def test_prices_are_per_million_tokens_and_the_table_extends() -> None:
    table = PriceTable({"mine": Price(1.0, 3.0)})
    assert table.cost("mine", 1_000_000, 1_000_000) == pytest.approx(4.0)
    assert table.cost("gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert table.cost("unknown-model", 10, 10) == 0.0 and "unknown-model" not in table


def test_cached_calls_cost_nothing() -> None:
    spend = Spend()
    spend.add_call("scoring", prompt_tokens=10, completion_tokens=2, usd=1.0, cached=True)
    spend.add_call("scoring", prompt_tokens=10, completion_tokens=2, usd=1.0)
    assert (spend.scoring_calls, spend.cached_calls, spend.tokens, spend.usd) == (2, 1, 12, 1.0)
    assert Spend.from_json(spend.to_json()) == spend


@given(st.integers(0, 200), st.integers(1, 200))
def test_wilson_interval_holds_the_proportion(successes: int, n: int) -> None:
    successes = min(successes, n)
    low, high = wilson_interval(successes, n)
    assert 0.0 <= low <= successes / n <= high <= 1.0


def test_t_quantiles_match_the_tables() -> None:
    for df, value in ((1, 12.706), (5, 2.571), (10, 2.228), (30, 2.042), (1000, 1.962)):
        assert student_t_quantile(df) == pytest.approx(value, abs=1e-3)


def test_mean_interval_picks_wilson_for_binary_and_t_for_continuous() -> None:
    mean, interval = mean_interval([1.0, 0.0, 1.0, 1.0])
    assert mean == 0.75 and interval == wilson_interval(3, 4)
    mean, (low, high) = mean_interval([0.2, 0.4, 0.6])
    assert mean == pytest.approx(0.4) and low < 0.4 < high


def test_config_file_settings_and_prices(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(
        'task = "antonyms"\nbudget_scoring_calls = 500\npolicy = "ttts"\n'
        '[prices."my-model"]\ninput = 0.5\noutput = 1.5\n'
    )
    settings = load_config_file(path)
    config = StudyConfig.of(**settings)
    assert config.budgets.scoring_calls == 500 and config.search.policy == "ttts"
    assert config.budgets.prices["my-model"] == Price(0.5, 1.5)


def test_an_unknown_config_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text('task = "x"\nbudget_cals = 5\n')
    with pytest.raises(
        ConfigError,
        match=r"study\.toml': budget_cals: unknown field; did you mean 'budget_scoring_calls'\?",
    ):
        load_config_file(path)
    path.write_text('task = "x"\ncolour = 5\n')  # nothing close: the keys there are
    with pytest.raises(
        ConfigError, match=r"study\.toml': colour: unknown field; expected one of task, "
    ):
        load_config_file(path)


def test_bad_values_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="policy: Invalid enum value 'best'; choose one of lucb, "
    ):
        StudyConfig.of(task="x", policy="best")
    with pytest.raises(ConfigError, match=r"concurrency: Expected `int` >= 1, got 0"):
        StudyConfig.of(task="x", concurrency=0)
    path = tmp_path / "broken.toml"
    path.write_text("task = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(path)


def test_the_scheduler_is_told_the_planned_candidates_and_the_reward_kind() -> None:
    config = StudyConfig.of(task="sum", initial_candidates=20, variant_rounds=2)
    assert config.study().proposals.planned() == 20 + 2 * 3 * 3
    more = config.replace(include_human=True, max_candidates=30)
    assert more.study().proposals.planned() == 30
    task = load_task("sum")
    assert reward_kind("exec", task.metric, custom=False) == "binary"
    assert reward_kind("logprob", task.metric, custom=False) == "continuous"
    assert reward_kind("exec", "f1", custom=False) == "continuous"
    assert reward_kind("exec", task.metric, custom=True) == "continuous"


def test_the_transport_is_checked_and_reaches_the_endpoints() -> None:
    config = StudyConfig.of(task="sum", transport="lean")
    endpoint = Endpoint(base_url="http://h/v1", name="target", model="m")
    assert endpoint_config(endpoint, config.target, config.throughput).transport == "lean"
    with pytest.raises(
        ConfigError, match="transport: Invalid enum value 'curl'; choose one of aiohttp, lean"
    ):
        StudyConfig.of(task="sum", transport="curl")


def test_settings_files_that_cannot_be_read_are_named(tmp_path: Path) -> None:
    from engine.propose.candidates import load_candidates

    latin = tmp_path / "latin.toml"
    latin.write_bytes("policy = 'lucb' # caf\xe9\n".encode("latin-1"))
    missing = tmp_path / "missing.txt"
    for load, path, problem in (
        (load_config_file, latin, "not UTF-8 text"),
        (load_config_file, missing, "cannot read it"),
        (load_candidates, latin, "not UTF-8 text"),
        (load_candidates, missing, "cannot read it"),
    ):
        with pytest.raises(ConfigError, match=problem) as caught:
            load(path)
        assert str(path) in str(caught.value)
