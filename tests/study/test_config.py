"""`StudyConfig` checked where it enters: keyword construction, a TOML file, a journal header and
the command line; each bad value a `ConfigError` naming its source and field path."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest

from engine.cli import resume as resume_cli
from engine.cli import run as run_cli
from engine.cli.flags import FLAGGED
from engine.errors import ConfigError
from engine.llm.endpoint import TRANSPORTS
from engine.local.models import served_model_name
from engine.propose import PROPOSAL_MODES
from engine.search.factory import POLICIES
from engine.settings import SETTINGS, StudyConfig, load_config_file
from engine.study.budgets import Price
from engine.study.settings import BUDGET_NAMES, ProposalPlan
from engine.task import METRICS

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    (
        {"budget_scoring_calls": 2**53 + 1},
        "budget_scoring_calls: Expected `int` <= 9007199254740992",
    ),
    ({"budget_tokens": -1}, "budget_tokens: Expected `int` >= 0, got -1"),
    ({"budget_usd": float("inf")}, "budget_usd: Expected `float` <= 9007199254740992.0, got inf"),
    ({"budget_seconds": float("nan")}, "budget_seconds: Expected `float` >= 0.0, got nan"),
    ({"concurrency": 100_001}, "concurrency: Expected `int` <= 100000, got 100001"),
    ({"concurrency": True}, "concurrency: Expected `int`, got `bool` (true)"),
    ({"rpm": 0}, "rpm: Expected `float` >= 0.01, got 0"),
    ({"tpm": 2e9}, "tpm: Expected `float` <= 1000000000.0, got 2000000000.0"),
    ({"delta": 1}, "delta: Expected `float` < 1.0, got 1"),
    ({"epsilon": 1.0}, "epsilon: Expected `float` < 1.0, got 1.0"),
    ({"new_candidate_share": 1.0}, "new_candidate_share: Expected `float` < 1.0, got 1.0"),
    ({"max_failure_share": -0.1}, "max_failure_share: Expected `float` >= 0.0, got -0.1"),
    ({"base_url": "ftp://host"}, "base_url: Expected `str` matching regex '^https?://'"),
    ({"proposal_base_url": "host:80"}, "proposal_base_url: Expected `str` matching regex"),
    ({"scoring": "vibes"}, "scoring: Invalid enum value 'vibes'; choose one of exec, logprob"),
    ({"api": "rest"}, "api: Invalid enum value 'rest'; choose one of chat, completions"),
    ({"backend": "gpu"}, "backend: Invalid enum value 'gpu'; choose one of sim, local"),
    ({"scorer": "no_colon"}, "scorer: Expected `str` matching regex"),
    ({"prices": {"m": {"input": -1}}}, "prices.m.input: Expected `float` >= 0.0, got -1"),
    (
        {"prices": {"m": {"inptu": 1}}},
        "prices.m.inptu: unknown field; did you mean 'input'?",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_VALUES)
def test_a_bad_value_is_named_by_its_field_path(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        StudyConfig.of(task="x", **change)


def test_choices_come_from_the_registries() -> None:
    by_flat = {one.flat: one for one in SETTINGS}

    def choices(name: str) -> tuple[str, ...]:
        return tuple(by_flat[name].choices)

    assert choices("policy") == tuple(POLICIES)
    assert choices("transport") == TRANSPORTS
    assert choices("proposal_template") == PROPOSAL_MODES
    assert choices("metric") == METRICS


def test_keyword_construction_decodes_and_replace_checks() -> None:
    config = StudyConfig.of(task="x", prices={"m": {"input": 1, "output": 2}})
    assert config.budgets.prices == {"m": Price(1.0, 2.0)}
    with pytest.raises(ConfigError, match=r"^concurrency: Expected `int` >= 1, got 0"):
        config.replace(concurrency=0)
    assert config.replace(concurrency=4).throughput.concurrency == 4
    assert StudyConfig.from_json(config.to_json()) == config


def test_a_journal_written_before_the_rename_still_reads() -> None:
    data = StudyConfig.of(task="x").flat()  # version 2 kept the settings flat
    data["budget_calls"] = data.pop("budget_scoring_calls")
    data["budget_calls"] = 700
    assert StudyConfig.from_json(data).budgets.scoring_calls == 700
    with pytest.raises(ConfigError, match=r"^journal 'j': concurrency: Expected `int`, got `str`"):
        StudyConfig.from_json({**data, "concurrency": "8"}, where="journal 'j'")


def test_the_study_reads_its_groups() -> None:
    config = StudyConfig.of(task="x", budget_scoring_calls=50, budget_usd=1.5, max_candidates=40)
    assert set(config.budgets.as_dict()) == set(BUDGET_NAMES)
    settings = config.study()
    assert settings.budgets.scoring_calls == 50 and settings.budgets.usd == 1.5
    assert settings.budgets is config.budgets
    assert settings.proposals == ProposalPlan(max_candidates=40)
    assert (settings.search, settings.throughput) == (config.search, config.throughput)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("budget_usd = -1\n", "budget_usd: Expected `float` >= 0.0, got -1"),
        ("budget_seconds = inf\n", "budget_seconds: Expected `float` <= 9007199254740992.0"),
        ("budget_calls = 5\n", "budget_calls: renamed; use budget_scoring_calls"),
        ("seed = 1.5\n", "seed: Expected `int`, got `float` (1.5)"),
        ('[prices."my-model"]\ninput = "free"\n', "prices.my-model.input: Expected `float`"),
    ],
)
def test_a_config_file_names_the_file_and_the_field(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "study.toml"
    path.write_text('task = "sum"\n' + toml)
    with pytest.raises(ConfigError, match=re.escape(f"config file {str(path)!r}: {message}")):
        load_config_file(path)


def test_a_config_file_gives_its_settings_checked(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text('task = "sum"\nrpm = 60\n[prices."m"]\noutput = 2\n')
    assert load_config_file(path) == {"task": "sum", "rpm": 60, "prices": {"m": {"output": 2}}}
    config = StudyConfig.decode(load_config_file(path))
    assert config.target.rpm == 60.0 and config.budgets.prices == {"m": Price(0, 2)}


def test_a_config_file_may_nest_settings_by_group(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(
        'task = "sum"\n[throughput]\nconcurrency = 7\n[target]\nmodel = "m"\n'
        '[budgets]\nusd = 2.5\n[proposal]\nmodel = "p"\n'
    )
    config = StudyConfig.decode(load_config_file(path))
    flat = StudyConfig.of(task="sum", concurrency=7, model="m", budget_usd=2.5, proposal_model="p")
    assert config == flat
    path.write_text('task = "sum"\n[throughput]\nconcurency = 7\n')
    with pytest.raises(ConfigError, match=r"throughput\.concurency: unknown field; did you mean"):
        load_config_file(path)


# -- the command line: flags from the fields ---------------------------------------------------


def run_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_every_setting_but_the_price_table_is_a_flag() -> None:
    # the endpoint tables are files' and a repeated --base-url's; checks are tables
    tables = {"prices", "endpoints", "proposal_endpoints", "judge_endpoints", "checks"}
    assert set(FLAGGED) == {one.flat for one in SETTINGS} - tables
    config = run_cli.config_from_args(
        run_args("--task", "sum", "--policy", "ttts", "--include-human", "--no-cache")
    )
    assert config.search.policy == "ttts"
    assert (config.proposals.include_human, config.outputs.no_cache) == (True, True)
    assert run_cli.config_from_args(run_args("--task", "sum")) == StudyConfig.of(task="sum")


def test_the_scoring_budget_flag_keeps_its_old_name_as_an_alias() -> None:
    for flag in ("--budget-scoring-calls", "--budget-calls"):
        config = run_cli.config_from_args(run_args("--task", "sum", flag, "120"))
        assert config.budgets.scoring_calls == 120
    parser = argparse.ArgumentParser()
    resume_cli.add_arguments(parser)
    assert parser.parse_args(["j.jsonl", "--budget-calls", "9"]).budget_scoring_calls == 9


def test_a_bad_flag_value_is_named_by_its_flag(capsys: pytest.CaptureFixture[str]) -> None:
    refused = r"^--concurrency: Expected `int` >= 1, got 0 \(its range: 1 to 100,000\)$"
    with pytest.raises(ConfigError, match=refused):
        run_cli.config_from_args(run_args("--task", "sum", "--concurrency", "0"))
    refused = r"^--sim-latency: Expected `float` >= 0.0, got -1.0 \(its range: 0 to 600\)$"
    with pytest.raises(ConfigError, match=refused):
        run_cli.config_from_args(run_args("--task", "sum", "--sim-latency", "-1"))
    with pytest.raises(SystemExit):
        run_args("--policy", "best")  # argparse knows the choices
    assert "invalid choice: 'best'" in capsys.readouterr().err


def test_flags_override_the_file_and_the_local_model_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text('task = "sum"\nconcurrency = 3\nbackend = "local"\n')
    config = run_cli.config_from_args(run_args("--config", str(path), "--concurrency", "5"))
    assert config.throughput.concurrency == 5
    assert config.target.model == served_model_name("smollm2")
