"""The response cache on the study's path: the SQLite cache against the JSON-lines cache it
replaced (a dict in memory, loaded whole at start, and an append per answer), in one process.

Three numbers each, for `--entries` answers (200,000): microseconds per write and per lookup
(the dispatcher looks one up before every scoring call, on the event loop), and the time and
memory to open a cache that holds them all (what every study pays at its start). Ratios are ours
/ baseline. Writes bench/results/cache.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.study.cache import ResponseCache  # noqa: E402

RESULTS = ROOT / "bench" / "results"


class JsonLinesCache:
    """The cache this replaced: every entry in a dict, one appended JSON line per answer."""

    def __init__(self, path: Path) -> None:
        self.entries: dict[str, Any] = {}
        if path.exists():
            for line in path.read_bytes().split(b"\n"):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                self.entries[record["key"]] = record["value"]
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def get(self, key: str) -> Any:
        return self.entries.get(key)

    def put(self, key: str, value: Any) -> None:
        self.entries[key] = value
        os.write(self.fd, orjson.dumps({"key": key, "value": value}) + b"\n")

    def close(self) -> None:
        os.close(self.fd)


def timed(action: Callable[[], None]) -> float:
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(make: Callable[[], Any], keys: list[str]) -> dict[str, float]:
    cache = make()
    value = [1.0, 41, 2, "sim-1"]  # what a scoring answer holds
    put_s = timed(lambda: [cache.put(key, value) for key in keys])
    get_s = timed(lambda: [cache.get(key) for key in keys])
    cache.close()
    tracemalloc.start()
    start = time.perf_counter()
    opened = make()
    open_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    opened.close()
    return {
        "put_us": put_s / len(keys) * 1e6,
        "get_us": get_s / len(keys) * 1e6,
        "open_s": open_s,
        "open_mb": peak / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=200_000, help="answers (200000)")
    args = parser.parse_args()
    keys = [ResponseCache.key({"request": n}) for n in range(args.entries)]
    with tempfile.TemporaryDirectory() as folder:
        baseline = measure(lambda: JsonLinesCache(Path(folder) / "cache.jsonl"), keys)
        ours = measure(lambda: ResponseCache(Path(folder) / "cache.sqlite3"), keys)
    ratios = {name: ours[name] / baseline[name] for name in ours}
    result = {"entries": args.entries, "baseline": baseline, "sqlite": ours, "ratios": ratios}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cache.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.entries:,} answers: JSON lines + dict -> SQLite (ratio)")
    for name, unit in (("put_us", "us"), ("get_us", "us"), ("open_s", "s"), ("open_mb", "MB")):
        print(
            f"  {name:8} {baseline[name]:10.3f} {unit} -> {ours[name]:10.3f} {unit} "
            f"({ratios[name]:.2f}x)"
        )


if __name__ == "__main__":
    main()
