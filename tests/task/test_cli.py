from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.task import builtin_task_names


def test_tasks_lists_every_builtin_with_count_metric_and_instruction(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in builtin_task_names():
        assert name in out
    assert "Add the two numbers." in out and "exact_match" in out
    assert "585" in out  # sum's example count with seed 0


def test_tasks_describes_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "pairs.data"
    lines = [json.dumps({"input": f"in{i}", "output": [f"out{i}", "alt"]}) for i in range(40)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["tasks", str(path), "--format", "jsonl", "--examples", "2"]) == 0
    out = capsys.readouterr().out
    assert "examples: 40" in out and "metric: exact_match" in out
    assert "pools (defaults, seed 0): demo 7, scoring 23, test 10" in out
    assert "in0" in out and "out0 | alt" in out and "in2" not in out
    assert "human instruction: (none)" in out


def test_tasks_describes_a_builtin_by_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["tasks", "antonyms", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert (
        "antonyms" in out and "builtin:antonyms" in out and "demo 50, scoring 200, test 100" in out
    )


def test_tasks_reports_a_bad_file_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"input": "a"}\n', encoding="utf-8")
    assert main(["tasks", str(path)]) == 1
    assert "broken.jsonl: line 1: missing field 'output'" in capsys.readouterr().err
    assert main(["tasks", "no_such_task"]) == 1
    assert "built-in tasks: first_letter" in capsys.readouterr().err
