"""The rooms of engine/llm import only downwards: proof that the contract catches a room reaching
up (on a copy of the package, never the checkout)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.test_layers import LINT_IMPORTS, ROOT, lint_imports

CONTRACT = "engine.llm's rooms import only downwards"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    if not LINT_IMPORTS.exists():
        pytest.skip("import-linter is not installed (make install installs it)")
    shutil.copytree(
        ROOT / "engine", tmp_path / "engine", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def reach(copy: Path, module: str, target: str) -> str:
    """lint-imports' report after `module` (a path under engine/llm) imports `target`."""
    path = copy / "engine" / "llm" / module
    path.write_text(path.read_text() + f"\nimport {target}\n")
    broken = lint_imports(copy)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"{CONTRACT} BROKEN" in broken.stdout
    return broken.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "target", "chain"),
    [
        (
            "pacing/limiter.py",
            "engine.llm.client",
            "engine.llm.pacing.limiter -> engine.llm.client",
        ),
        ("protocol/dialect.py", "engine.llm.pool.endpoint_pool", "engine.llm.protocol.dialect ->"),
        ("transport/lean.py", "engine.llm.protocol.request", "engine.llm.transport.lean ->"),
        ("protocol/request.py", "engine.llm.transport.aiohttp", "engine.llm.protocol.request ->"),
        ("probing/preflight.py", "engine.llm.client", "engine.llm.probing.preflight ->"),
    ],
)
def test_a_room_reaching_up_or_across_breaks_the_contract(
    copy: Path, module: str, target: str, chain: str
) -> None:
    assert chain in reach(copy, module, target)
