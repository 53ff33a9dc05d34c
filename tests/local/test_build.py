"""The local build: portable instructions only, and a clear message where it cannot run.

The check's child is replaced by one that dies the way a build for another CPU dies (SIGILL), so
these tests run on any machine; the read-back of the installed build needs llama-cpp-python.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.local import runnable

SIGILL_CHILD = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runnable, "build_key", lambda: "test-build")


def test_a_child_killed_by_sigill_becomes_one_line_with_the_fix(
    tmp_path: Path, fake_build: None
) -> None:
    with pytest.raises(ConfigError) as caught:
        runnable.check_runnable(tmp_path / "m.gguf", child_code=SIGILL_CHILD, cache_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "died by SIGILL" in message
    assert "make install-local" in message
    assert "-DGGML_NATIVE=OFF" in message
    assert not list(tmp_path.glob("*.ok")), "a failed check must not be remembered"


def test_a_passing_build_is_checked_once(tmp_path: Path, fake_build: None) -> None:
    runnable.check_runnable(
        tmp_path / "m.gguf", child_code="print('CPU : AVX2 = 1 |')", cache_dir=tmp_path
    )
    assert (tmp_path / "test-build.ok").read_text().strip() == "CPU : AVX2 = 1 |"
    # remembered: a child that would die is not started again for this build
    runnable.check_runnable(tmp_path / "m.gguf", child_code=SIGILL_CHILD, cache_dir=tmp_path)


def test_another_failure_names_its_last_line(tmp_path: Path, fake_build: None) -> None:
    code = "import sys; print('noise', file=sys.stderr); sys.exit('llama: bad magic')"
    with pytest.raises(ConfigError, match=r"exit 1: llama: bad magic\)$"):
        runnable.check_runnable(tmp_path / "m.gguf", child_code=code, cache_dir=tmp_path)


def test_ape_engine_local_says_why_instead_of_dying(tmp_path: Path) -> None:
    """The whole path: a llama_cpp whose first evaluation traps, as a native AMX build does on
    a kernel that does not grant AMX; the command exits 1 with one line on stderr."""
    package = tmp_path / "site" / "llama_cpp"
    (package / "lib").mkdir(parents=True)
    (package / "lib" / "libggml-cpu.so").write_bytes(b"\x7fELF")
    (package / "__init__.py").write_text(
        "import os, signal\n"
        "class Llama:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        os.kill(os.getpid(), signal.SIGILL)\n"
    )
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "site"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "engine", "local", "--model", str(model), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "died by SIGILL" in lines[0]
    assert "make install-local" in lines[0]


# -- the installed build --------------------------------------------------------------------------

_BEYOND_AVX2 = re.compile(
    r"%zmm\d|%tmm\d|%k[1-7]\b|\{%k[1-7]\}|\btile(?:zero|loadd|stored|release)"
)


@pytest.mark.parametrize(
    ("line", "beyond"),
    [
        ("vpaddd %zmm1,%zmm2,%zmm3", True),
        ("vmovdqu8 (%rax),%zmm0{%k1}", True),
        ("kmovw  %k2,%eax", True),
        ("tilezero %tmm4", True),
        ("tileloadd (%rsi,%rdx,1),%tmm0", True),
        ("vfmadd231ps %ymm1,%ymm2,%ymm3", False),
        ("vcvtph2ps %xmm0,%ymm0", False),
        ("mov    %rsp,%rbp", False),
    ],
)
def test_the_instruction_scan_tells_avx512_and_amx_from_avx2(line: str, beyond: bool) -> None:
    assert bool(_BEYOND_AVX2.search(line)) is beyond


def _installed_llama() -> Path:
    try:
        import llama_cpp
    except ImportError as error:
        if os.environ.get("APE_REQUIRE_LOCAL"):
            pytest.fail(f"APE_REQUIRE_LOCAL is set but llama-cpp-python is missing: {error}")
        pytest.skip(f"llama-cpp-python is not installed ({error})")
    return Path(llama_cpp.__file__).parent


def test_the_installed_build_was_made_with_portable_options() -> None:
    _installed_llama()
    options_file = Path(sys.prefix) / "llama-cpp-build-options"
    if not options_file.is_file():
        pytest.skip("llama-cpp-python was not installed by `make install-local`")
    options = options_file.read_text().split()
    assert "-DGGML_NATIVE=OFF" in options
    for flag in ("GGML_NATIVE", "GGML_AVX512", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"):
        assert f"-D{flag}=ON" not in options


def test_the_installed_build_reports_no_avx512_or_amx() -> None:
    """llama.cpp's own account of the instructions it was compiled for."""
    _installed_llama()
    info = subprocess.run(
        [sys.executable, "-c", "import llama_cpp; print(llama_cpp.llama_print_system_info())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "AVX2 = 1" in info or "x86" not in os.uname().machine
    for feature in ("AVX512 = 1", "AVX512_VNNI = 1", "AVX512_BF16 = 1", "AMX_INT8 = 1"):
        assert feature not in info, info


@pytest.mark.slow
def test_the_installed_cpu_library_holds_no_avx512_or_amx_instruction() -> None:
    """The machine code itself: no AVX-512 register (zmm, mask k1-k7) and no AMX tile."""
    if os.uname().machine != "x86_64":
        pytest.skip("the instruction scan is for x86-64")
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    libraries = sorted((_installed_llama() / "lib").glob("libggml-cpu*.so*"))
    assert libraries, "llama_cpp/lib holds no libggml-cpu library"
    for library in libraries:
        listing = subprocess.run(
            [objdump, "-d", "--no-show-raw-insn", str(library)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        found = _BEYOND_AVX2.search(listing)
        assert found is None, f"{library.name}: {found.group(0) if found else ''}"
