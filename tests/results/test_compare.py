"""`ape-engine compare`: studies side by side in the terminal and as one page, opened in
Debian's headless chromium as `show --html` is."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest

from engine.app import optimize
from engine.app.records import open_record, study_settings
from engine.cli import main
from engine.ui.compare import differing, labelled, render_compare_html
from tests.results.conftest import SHORT, copy_of

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, journal: Path) -> Path:
    """A state folder of its own holding a copy of the shared study (the shared folder holds
    that one study only, as the other commands' tests count)."""
    root = tmp_path_factory.mktemp("compare")
    copy_of(journal, root / "journals")
    return root


@pytest.fixture(scope="module")
def other(folder: Path) -> Path:
    """The same task with another policy, a larger budget and a baseline, in the same folder."""
    journal = folder / "journals" / "larger_number-other.jsonl"
    settings = {**SHORT, "policy": "ttts", "budget_scoring_calls": 160}
    result = optimize("larger_number", journal=str(journal), baseline="Say a number.", **settings)  # type: ignore[arg-type]
    assert result.status == "finished", result.reason
    return journal


def test_compare_shows_winners_scores_spend_and_what_differs(
    journal: Path, other: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    assert main(["compare", str(journal), str(other)]) == 0
    out = capsys.readouterr().out
    a, b = open_record(journal), open_record(other)
    for record in (a, b):
        held = record.held("winner")
        assert held is not None
        low, high = held.interval
        assert f"{held.score:.3f} [{low:.3f}, {high:.3f}] n={held.n}" in out
        assert record.study_id in out and f"{record.spend.scoring_calls:,}" in out
    assert "Settings that differ" in out
    assert re.search(r"policy\s+│ paired\s+│ ttts", out)
    assert re.search(r"budget_scoring_calls\s+│ 120\s+│ 160", out)
    assert re.search(r"baseline\s+│ -\s+│ Say a number\.", out)
    assert "journal" not in [line.split("│")[0].strip() for line in out.splitlines()]
    assert "note: B - A: winner held out" in out


def test_compare_by_id_and_bad_input(
    folder: Path, journal: Path, other: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [open_record(path).study_id for path in (journal, other)]
    assert main(["compare", *ids, "--state-dir", str(folder)]) == 0
    capsys.readouterr()
    assert main(["compare", str(journal)]) == 2
    assert "give two studies or more" in capsys.readouterr().err
    assert main(["compare", str(journal), "no-such-study", "--state-dir", str(folder)]) == 2


def test_the_settings_that_differ_and_a_different_task(journal: Path, other: Path) -> None:
    a, b = open_record(journal), open_record(other)
    studies = labelled([(a, study_settings(a)), (b, study_settings(b))])
    names = [name for name, _ in differing(studies)]
    assert names == ["policy", "budget_scoring_calls", "baseline"]
    moved = dataclasses.replace(b, task=msgspec.structs.replace(b.task, fingerprint="0" * 16))
    page = render_compare_html(labelled([(a, study_settings(a)), (moved, study_settings(b))]))
    assert "made on different tasks" in page


def test_the_page_holds_everything_itself_and_escapes(journal: Path, other: Path) -> None:
    a, b = open_record(journal), open_record(other)
    evil = "<script>alert(1)</script>"
    arms = tuple(dataclasses.replace(arm, instruction=evil) for arm in b.arms)
    studies = labelled([(a, study_settings(a)), (dataclasses.replace(b, arms=arms), study_settings(b))])  # fmt: skip
    page = render_compare_html(studies)
    assert 'id="compare-table"' in page and 'id="settings-table"' in page
    assert 'id="plot-compare"><img' in page
    assert "<script" not in page and "&lt;script&gt;" in page
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"
)
def test_chromium_renders_the_comparison(
    journal: Path, other: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "compare.html"
    assert main(["compare", str(journal), str(other), "--html", str(page)]) == 0
    assert f"comparison written to {page}" in capsys.readouterr().out
    browser = [str(CHROMIUM), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars"]
    dom = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert re.search(r'<figure id="plot-compare"><img alt="[^"]+" src="data:image/png;base64,', dom)
    for table in ("compare-table", "settings-table"):
        assert f'<table id="{table}">' in dom
    assert dom.count("<tr") > 20
    shot = tmp_path / "compare.png"
    subprocess.run(
        [*browser, "--window-size=1200,1400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 40_000  # a page, not a blank
