"""Reading a large task file: the engine's streaming loader against the whole-text reader it
replaced, on the same JSON lines file, each in a fresh child process.

The baseline is what the loader did before: read the whole file as text, split it into lines,
parse each (a duplicate-key check per object), build the examples. The engine's side loads the
task and draws a study's pools from it (what a study keeps: 350 examples by default). Both are
measured by wall time, CPU time and peak resident memory (``ru_maxrss``) of their own process,
and the ratio ours / baseline is reported; a dry run of ``ape-engine run --backend sim`` on the
same file is measured too (what a user waits for). Writes bench/results/task_files.json.
``--mb`` sets the file's size (200) with lines of about 190 bytes; ``--lines N`` writes N short
lines instead (about 48 bytes each: ``--lines 1000000`` is a 48 MB file of a million examples).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
path, which = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if which == "engine":
    from engine.task import load_task, split_task
    task = load_task(path)
    count = len(task.examples)
    split_task(task, seed=0)
else:  # the whole-text reader the streaming loader replaced
    from engine.task.types import Example
    def pairs(items):
        seen = {}
        for key, value in items:
            if key in seen:
                raise ValueError(key)
            seen[key] = value
        return seen
    decoder = json.JSONDecoder(object_pairs_hook=pairs)
    text = open(path, encoding="utf-8").read()
    examples = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            record = decoder.decode(line)
            examples.append(Example(str(record["input"]), (str(record["output"]),), key=f"line {number}"))
    count = len(examples)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps({"examples": count, "seconds": seconds, "cpu_s": cpu, "peak_mb": usage.ru_maxrss / 1024}))
"""


def write_file(path: Path, megabytes: float) -> int:
    rng = random.Random(0)
    target, size, count = megabytes * 1e6, 0, 0
    with path.open("w", encoding="utf-8") as file:
        while size < target:
            text = f"example number {count} " + "lorem ipsum dolor sit amet " * rng.randint(2, 8)
            line = json.dumps({"input": text, "output": str(count)}) + "\n"
            file.write(line)
            size += len(line)
            count += 1
    return count


def write_short_lines(path: Path, lines: int) -> int:
    """`lines` examples of a few words each (the shape of a file of a million short inputs)."""
    with path.open("w", encoding="utf-8") as file:
        for count in range(lines):
            file.write(json.dumps({"input": f"{count} plus {count % 97}", "output": str(count)}))
            file.write("\n")
    return lines


def child(path: Path, which: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), which, str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def dry_run(path: Path) -> dict[str, Any]:
    start = time.perf_counter()
    command = [sys.executable, "-m", "engine", "run", "--task", str(path), "--dry-run"]
    command += ["--backend", "sim"]  # a task file needs an endpoint, or the simulator said
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command],
        capture_output=True,
        text=True,
        cwd=path.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    seconds = time.perf_counter() - start
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return {"seconds": seconds, "peak_mb": peak_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=200.0, help="size of the file (200)")
    parser.add_argument("--lines", type=int, help="write this many short lines instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.jsonl"
        if args.lines:
            lines = write_short_lines(path, args.lines)
            args.mb = path.stat().st_size / 1e6
        else:
            lines = write_file(path, args.mb)
        baseline = child(path, "baseline")
        ours = child(path, "engine")
        dry = dry_run(path)
    assert ours["examples"] == baseline["examples"] == lines
    result = {
        "file_mb": args.mb,
        "examples": lines,
        "baseline": baseline,
        "engine": ours,
        "time_ratio": ours["seconds"] / baseline["seconds"],
        "cpu_ratio": ours["cpu_s"] / baseline["cpu_s"],
        "memory_ratio": ours["peak_mb"] / baseline["peak_mb"],
        "dry_run": dry,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "task_files.json" if not args.lines else f"task_files_{args.lines}_lines.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.mb:g} MB, {lines:,} examples\n"
        f"  whole-text reader: {baseline['seconds']:.1f} s ({baseline['cpu_s']:.1f} s CPU), "
        f"{baseline['peak_mb']:.0f} MB peak\n"
        f"  streaming loader and pools: {ours['seconds']:.1f} s ({ours['cpu_s']:.1f} s CPU), "
        f"{ours['peak_mb']:.0f} MB peak ({result['cpu_ratio']:.2f}x the CPU time, "
        f"{result['memory_ratio']:.2f}x the memory)\n"
        f"  ape-engine run --backend sim --dry-run: {dry['seconds']:.1f} s, "
        f"{dry['peak_mb']:.0f} MB peak"
    )


if __name__ == "__main__":
    main()
