"""A study's memory against its estimate: the peak resident memory of `ape-engine run` (the
built-in simulator in the same process) next to the worst case `--dry-run` prints, over studies
that grow in each dimension the estimate multiplies: candidates, scoring examples, the
examples' text, calls in flight.

    .venv/bin/python bench/study_memory.py            # about 3 minutes
    .venv/bin/python bench/study_memory.py --seconds 20

Each study runs in a child process for `--seconds` (or to its end) on a task file of its own;
the peak is read from /proc every 50 ms. A ratio peak / estimate above 1 means the estimate is
not a worst case. Writes bench/results/study_memory.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ENGINE = Path(sys.executable).parent / "ape-engine"
RESULTS = ROOT / "results"

#: (name, candidates, examples in the file, scoring pool, characters per input, concurrency)
CASES = [
    ("default-like", 20, 400, 200, 20, 32),
    ("many candidates", 2000, 400, 200, 20, 32),
    ("large pool", 200, 12_000, 10_000, 20, 32),
    ("both", 2000, 12_000, 10_000, 20, 32),
    ("long inputs", 50, 3_000, 1_000, 4_000, 32),
    ("many in flight", 500, 400, 200, 20, 20_000),
]


def _peak_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match[1]) / 1024 if match else 0.0


def _write_case(folder: Path, candidates: int, examples: int, chars: int) -> tuple[Path, Path]:
    task = folder / "task.jsonl"
    with task.open("w") as out:
        for i in range(examples):
            word = f"w{i:06d}"
            text = (word + " ") * max(1, chars // 8)
            out.write(json.dumps({"input": text.strip(), "output": word[:2]}) + "\n")
    listed = folder / "candidates.txt"
    listed.write_text(
        "".join(
            f"Write the first two letters of the word, variant {i}.\n" for i in range(candidates)
        )
    )
    return task, listed


def _command(task: Path, listed: Path, journal: Path, pool: int, concurrency: int) -> list[str]:
    return [
        str(ENGINE), "run", "--backend", "sim", "--task", str(task), "--candidates", str(listed),
        "--initial-candidates", "0", "--variant-rounds", "0", "--max-candidates", "2000",
        "--scoring-size", str(pool), "--test-size", "100", "--demo-size", "50",
        "--concurrency", str(concurrency), "--no-cache", "--journal", str(journal),
    ]  # fmt: skip


def _estimate(command: list[str]) -> float:
    out = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, check=True)
    match = re.search(r"memory: at most ~([\d,]+) MB", out.stdout + out.stderr)
    if match is None:
        raise SystemExit(f"no memory line in the dry run:\n{out.stdout}{out.stderr}")
    return float(match[1].replace(",", ""))


def measure(case: tuple[str, int, int, int, int, int], seconds: float) -> dict[str, object]:
    name, candidates, examples, pool, chars, concurrency = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        task, listed = _write_case(folder, candidates, examples, chars)
        command = _command(task, listed, folder / "j.jsonl", pool, concurrency)
        estimate = _estimate(command)
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak, start = 0.0, time.monotonic()
        while time.monotonic() - start < seconds and child.poll() is None:
            peak = max(peak, _peak_mb(child.pid))
            time.sleep(0.05)
        child.kill()
        child.wait()
    return {"case": name, "estimate_mb": estimate, "peak_mb": round(peak, 1),
            "ratio": round(peak / estimate, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    rows = [measure(case, args.seconds) for case in CASES]
    print("| study | estimate (MB) | peak (MB) | peak / estimate |\n|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['case']} | {row['estimate_mb']:.0f} | {row['peak_mb']:.0f} | {row['ratio']} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "study_memory.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
