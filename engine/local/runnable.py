"""Can the installed llama.cpp run on this machine? Asked once per build, in a child process.

llama.cpp compiled for instructions this CPU (or its kernel) does not allow -- a native build
made on a machine with AVX-512 or AMX, or a wheel from pip's cache -- does not fail with an
error: the process dies by SIGILL at the first such instruction, with nothing flushed or
explained. So before a model is loaded in this process, a short-lived child loads it and
evaluates a few tokens. A child that dies by a signal becomes one line naming the cause and the
fix; a child that succeeds is remembered under a key of the installed build (its library files,
sizes and times), so the check costs a second once per build, not per start.

The portable build is what ``make install-local`` compiles (x86-64-v3: AVX2, FMA, F16C, BMI2;
no native flags, no AVX-512, no AMX); docs/guide.md has the options.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

from engine.errors import ConfigError

__all__ = ["CHILD_CODE", "REBUILD_HINT", "build_key", "check_runnable", "system_info"]

REBUILD_HINT = (
    "rebuild it portably with `make install-local` (or: CMAKE_ARGS='-DGGML_NATIVE=OFF "
    "-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF' pip install "
    "--no-cache-dir --force-reinstall --no-binary llama-cpp-python llama-cpp-python==0.3.36)"
)
#: What the child runs: load the model given as argv[1], evaluate a few tokens (the matrix
#: kernels a build specialises), print llama.cpp's compiled features.
CHILD_CODE = """
import sys
import llama_cpp
llama = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, n_batch=64, n_threads=1,
                        n_threads_batch=1, verbose=False)
llama.eval(llama.tokenize(b"A short evaluation checks that this build runs here."))
print(llama_cpp.llama_print_system_info().decode(errors="replace").strip())
"""
_TIMEOUT_S = 180.0


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "ape-engine" / "llama-check"


def build_key() -> str | None:
    """A key of the installed llama.cpp build: its package's files (names, sizes, times) and
    this Python; None when llama-cpp-python is not installed. Found without importing it."""
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    digest = hashlib.sha256(sys.executable.encode())
    for location in spec.submodule_search_locations:
        for path in sorted(Path(location).rglob("*")):
            if path.suffix in (".so", ".dylib", ".dll", ".py") and path.is_file():
                stat = path.stat()
                digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def system_info() -> str | None:
    """What the last successful check printed: llama.cpp's compiled CPU features."""
    key = build_key()
    if key is None:
        return None
    try:
        return (_cache_dir() / f"{key}.ok").read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _explain(model: Path, returncode: int, stderr: str) -> str:
    if returncode < 0:
        name = _signal_name(-returncode)
        cause = (
            "an instruction this CPU or its kernel does not allow (a build for another CPU: "
            "AVX-512 or AMX from a native build, or a wheel from pip's cache)"
            if -returncode == signal.SIGILL
            else "a crash inside llama.cpp"
        )
        return (
            f"local model: llama.cpp cannot run on this machine: a test evaluation of "
            f"{model.name} died by {name}, {cause}; {REBUILD_HINT}"
        )
    last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    return (
        f"local model: llama.cpp failed a test evaluation of {model.name} (exit {returncode}"
        f"{': ' + last.strip() if last else ''})"
    )


def check_runnable(
    model: str | Path,
    *,
    child_code: str = CHILD_CODE,
    cache_dir: Path | None = None,
    timeout_s: float = _TIMEOUT_S,
) -> None:
    """Raise `ConfigError` with one line naming the cause and the fix when the installed
    llama.cpp cannot evaluate `model` here; return at once when this build passed before, or
    when llama-cpp-python is not installed (importing it says so, with the install hint)."""
    key = build_key()
    if key is None:
        return
    folder = cache_dir or _cache_dir()
    marker = folder / f"{key}.ok"
    if marker.is_file():
        return
    path = Path(model)
    try:
        child = subprocess.run(
            [sys.executable, "-c", child_code, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"local model: a test evaluation of {path.name} took more than {timeout_s:g} s; "
            "the machine may be overloaded, or llama.cpp hangs here"
        ) from None
    if child.returncode != 0:
        raise ConfigError(_explain(path, child.returncode, child.stderr))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(child.stdout.strip() + "\n", encoding="utf-8")
    except OSError:
        pass  # not remembered: the next start checks again
