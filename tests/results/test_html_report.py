"""The HTML report: one page that opens offline, its plots inline, every text escaped; opened
in Debian's headless chromium, the rendered page holds the plots and the tables."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.app.records import open_record
from engine.cli import main
from engine.ui import html_report
from engine.ui.html_report import NO_PLOTS, render_html, write_html
from tests.results.conftest import SHORT

CHROMIUM = shutil.which("chromium")
PLOT_IDS = ("plot-forest", "plot-convergence", "plot-calls", "plot-held-out")
TABLE_IDS = ("held-out-table", "leaderboard-table", "spend-table", "answers-table")


def test_the_page_holds_everything_itself(journal: Path) -> None:
    page = render_html(open_record(journal))
    for plot in PLOT_IDS:
        assert f'id="{plot}"><img' in page
    assert page.count('src="data:image/png;base64,') == len(PLOT_IDS)
    for table in TABLE_IDS:
        assert f'id="{table}"' in page
    # nothing to fetch: no URL anywhere, no script
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "<script" not in page
    assert "http://" not in page and "https://" not in page


def test_wrong_answers_come_first(journal: Path) -> None:
    page = render_html(open_record(journal))
    answers = page[page.index('id="answers-table"') :]
    rows = re.findall(r'<tr class="(wrong|right)">', answers)
    assert "wrong" in rows and "right" in rows
    assert rows == sorted(rows, key=lambda kind: kind != "wrong")


def test_every_text_from_the_journal_is_escaped(journal: Path) -> None:
    record = open_record(journal)
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    answers = tuple(dataclasses.replace(row, answer=evil) for row in record.answers)
    arms = tuple(dataclasses.replace(arm, instruction=evil) for arm in record.arms)
    page = render_html(dataclasses.replace(record, answers=answers, arms=arms, reason=evil))
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_without_matplotlib_the_page_says_how_to_get_plots(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(html_report, "plots_available", lambda: False)
    page = render_html(open_record(journal))
    assert "pip install &#x27;ape-engine[report]&#x27;" in page and 'id="no-plots"' in page
    assert "data:image" not in page
    for table in TABLE_IDS:
        assert f'id="{table}"' in page
    assert NO_PLOTS.startswith("Plots need matplotlib")


def test_run_html_writes_the_report_at_the_end(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    flags = [
        f"--{name.replace('_', '-')}" if value is True else f"--{name.replace('_', '-')}={value}"
        for name, value in SHORT.items()
    ]
    journal = tmp_path / "run.jsonl"
    code = main(["run", "--task", "sum", "--journal", str(journal), *flags, "--html", str(page)])
    assert code == 0
    text = page.read_text()
    assert "on task sum" in text and 'id="plot-forest"' in text


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"
)
def test_chromium_renders_the_plots_and_the_tables(journal: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    write_html(open_record(journal), page)
    browser = [str(CHROMIUM), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars"]
    dom = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for plot in PLOT_IDS:  # each figure holds its image, as the browser parsed it
        assert re.search(rf'<figure id="{plot}"><img alt="[^"]+" src="data:image/png;base64,', dom)
    for table in TABLE_IDS:
        assert f'<table id="{table}">' in dom
    assert dom.count("<tr") > 20
    shot = tmp_path / "report.png"
    subprocess.run(
        [*browser, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a page, not a blank
