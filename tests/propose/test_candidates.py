"""The user's own candidates file: plain lines or JSONL, refused whole with the line named."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.propose import UserCandidate, load_candidates


def test_plain_lines_skip_blanks_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("# my variants\nAdd the numbers.\n\n  Sum the two numbers.  \n")
    assert load_candidates(path) == (
        UserCandidate("Add the numbers."),
        UserCandidate("Sum the two numbers."),
    )


def test_jsonl_carries_optional_names(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(
        '{"instruction": "Add the numbers.", "name": "short"}\n\n'
        '{"instruction": "Sum the two numbers."}\n'
    )
    assert load_candidates(path) == (
        UserCandidate("Add the numbers.", "short"),
        UserCandidate("Sum the two numbers.", ""),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Add them.\nadd  them!\n", "line 2: the same instruction as line 1"),
        ('{"instruction": "Add."}\n{"instruction": ""}\n', "line 2: instruction"),
        ('{"instruction": "Add."}\n{"prompt": "x"}\n', "line 2"),
        ('{"instruction": "Add."}\nnot json\n', "line 2"),
        ("\n# nothing\n", "holds no candidate"),
    ],
)
def test_a_bad_file_is_refused_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match="candidates file") as caught:
        load_candidates(path)
    assert message in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_candidates(tmp_path / "absent.txt")
