"""Bad input fails with a clear message before any call is made."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from engine.cli import resume as resume_cli
from engine.cli import run as cli
from engine.errors import ConfigError, DatasetError, JournalError

pytestmark = pytest.mark.e2e


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.main(parser.parse_args(list(argv)))


def test_an_unknown_task_names_the_built_in_tasks() -> None:
    with pytest.raises(DatasetError, match="neither a built-in task"):
        run("--task", "no-such-task", "--base-url", "http://127.0.0.1:9/v1")


def test_a_broken_task_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "task.jsonl"
    path.write_text('{"input": "a", "output": "b"}\n{not json\n')
    with pytest.raises(DatasetError, match=r"task\.jsonl"):
        run("--task", str(path), "--base-url", "http://127.0.0.1:9/v1")


def test_an_unknown_config_key_fails_before_any_call(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text('task = "sum"\nbuget_calls = 100\n')
    with pytest.raises(ConfigError, match=r"study\.toml': buget_calls: unknown field"):
        run("--config", str(path), "--base-url", "http://127.0.0.1:9/v1")


def test_a_dollar_budget_on_an_unpriced_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="has no price"):
        run(
            "--task",
            "sum",
            "--model",
            "my-llama",
            "--budget-usd",
            "1",
            "--base-url",
            "http://127.0.0.1:9/v1",
        )


def test_dry_run_prints_the_worst_case_and_the_expected_spend(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("--task", "sum", "--dry-run", "--base-url", "http://127.0.0.1:9/v1") == 0
    out = capsys.readouterr().out
    assert "worst case (full evaluation" in out and "expected:" in out
    assert "dry run: no call made" in out


def test_resume_refuses_a_file_that_is_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("hello\n")
    parser = argparse.ArgumentParser()
    resume_cli.add_arguments(parser)
    with pytest.raises(JournalError):
        resume_cli.main(parser.parse_args([str(path)]))


def test_a_templates_file_missing_a_placeholder_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    path.write_text('variant = "Reword this instruction."\n')
    with pytest.raises(ConfigError, match=r"templates\.toml.*'variant' lacks .*\{instruction\}"):
        run("--task", "sum", "--templates", str(path), "--base-url", "http://127.0.0.1:9/v1")


def test_a_custom_scorer_that_cannot_be_imported_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^scorer 'no_such_scorer_mod:f': importing"):
        run(
            "--task",
            "sum",
            "--scorer",
            "no_such_scorer_mod:f",
            "--base-url",
            "http://127.0.0.1:9/v1",
        )
    path = tmp_path / "scorers.py"
    path.write_text("def f(instruction, example, client):\n    return 1.0\n")
    with pytest.raises(ConfigError, match=r"must be an async function"):
        run("--task", "sum", "--scorer", f"{path}:f", "--base-url", "http://127.0.0.1:9/v1")


def test_config_file_proposal_settings_are_checked_before_any_call(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text('task = "sum"\nproposal_template = "sideways"\n')
    with pytest.raises(
        ConfigError,
        match=r"study\.toml': proposal_template: Invalid enum value 'sideways'; choose one of forward, insert",
    ):
        run("--config", str(path), "--base-url", "http://127.0.0.1:9/v1")
    path.write_text('task = "sum"\nduplicate_similarity = 1.5\n')
    with pytest.raises(
        ConfigError, match=r"study\.toml': duplicate_similarity: Expected `float` <= 1\.0, got 1\.5"
    ):
        run("--config", str(path), "--base-url", "http://127.0.0.1:9/v1")


def test_a_new_study_never_appends_to_another_studys_journal(tmp_path: Path) -> None:
    journal = tmp_path / "study.jsonl"
    journal.write_text('{"type": "header", "study_id": "abc"}\n')
    with pytest.raises(JournalError, match=r"study\.jsonl already holds a study.*resume"):
        run("--task", "sum", "--journal", str(journal), "--base-url", "http://127.0.0.1:9/v1")
    assert journal.read_text() == '{"type": "header", "study_id": "abc"}\n'  # untouched


def test_a_misspelt_flag_gets_a_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["run", "--task", "sum", "--budjet-usd", "3", "--concurency", "4"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--budjet-usd (did you mean --budget-usd?)" in error
    assert "--concurency (did you mean --concurrency?)" in error


def test_a_misspelt_config_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text('task = "sum"\nconcurency = 4\n')
    with pytest.raises(ConfigError, match=r"concurency: unknown field; did you mean 'concurrency'"):
        run("--config", str(path))
