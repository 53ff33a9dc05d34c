"""`pip install` of a fresh clone prints no deprecation warning of the project's own making:
setuptools deprecates `project.license` as a table (``{ text = "MIT" }``) for an SPDX
expression, which it reads from version 77 on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_license_is_an_spdx_expression_the_build_backend_reads() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert project["project"]["license"] == "MIT"  # a string, not a table
    (setuptools,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    floor = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert floor is not None and int(floor.group(1)) >= 77, setuptools
