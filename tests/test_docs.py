"""Every document the code cites is in the repository, and every section of docs/design.md a
docstring names is a heading there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_CITED_PAGE = re.compile(r"\bdocs/([a-z_-]+\.md)")
_CITED_SECTION = re.compile(r'docs/design\.md, "([^"]+)"')


def _sources() -> list[Path]:
    return sorted((ROOT / "engine").rglob("*.py")) + sorted((ROOT / "bench").glob("*.py"))


def test_every_cited_page_exists() -> None:
    missing = {
        (path.relative_to(ROOT).as_posix(), page)
        for path in _sources()
        for page in _CITED_PAGE.findall(path.read_text(encoding="utf-8"))
        if not (ROOT / "docs" / page).is_file()
    }
    assert not missing


def test_every_cited_design_section_is_a_heading() -> None:
    headings = set(re.findall(r"^## (.+)$", (ROOT / "docs/design.md").read_text(), re.MULTILINE))
    cited = {
        (path.relative_to(ROOT).as_posix(), section)
        for path in _sources()
        for section in _CITED_SECTION.findall(path.read_text(encoding="utf-8"))
    }
    assert cited, "the code cites docs/design.md by section"
    assert {(where, s) for where, s in cited if s not in headings} == set()


def test_the_guides_settings_table_is_the_one_the_fields_declare() -> None:
    from engine.settings import SETTINGS
    from engine.settings.fields import settings_table

    guide = (ROOT / "docs/guide.md").read_text(encoding="utf-8")
    shown = guide.split("<!-- settings table: begin -->\n")[1].split("<!-- settings table: end")[0]
    assert shown == settings_table(SETTINGS), "regenerate it: python -m engine.settings"


def test_every_setting_has_help_a_range_where_numeric_and_an_owner() -> None:
    from engine.settings import SETTINGS

    for one in SETTINGS:
        assert one.help and one.owner in ("user", "operator"), one.path
        if one.kind in (int, float):
            assert " to " in one.range, (one.path, one.range)  # bounded on both sides
        if one.owner == "operator":
            assert one.why, one.path  # what a service request is told


def test_the_benchmarks_describe_the_machine_by_its_load_not_by_who_used_it() -> None:
    """A benchmark's "Machine:" says what the machine is and how loaded (its load average),
    never who else was at work on it."""
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    machines = re.findall(r"Machine:(.*?)(?:\n- |\n\n|Command:)", text, re.DOTALL)
    assert len(machines) >= 10
    for machine in machines:
        said = " ".join(machine.split())
        assert not re.search(r"\b(agents?|helpers?|colleagues|other (people|users))\b", said), said
