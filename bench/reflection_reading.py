"""How many of the reflections a real model wrote the engine can read: every reflection and
merge answer in the proposals bench's response caches (bench/results/proposals-cache-*.sqlite3,
written by bench/proposals.py), judged again by this engine's `judge_revision`, counted by
verdict. No model is called; run it at two commits to compare two ways of reading.

    .venv/bin/python bench/reflection_reading.py
    .venv/bin/python bench/reflection_reading.py --show no_instruction   # those answers, whole
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from engine.propose.reflection import judge_revision  # noqa: E402

RESULTS = ROOT / "results"
VARIANT_KINDS = ("reflect", "merge")


def answers(caches: list[Path]) -> list[str]:
    """The raw answers of the cached proposal calls that made reflections or merges (a cache
    entry names the kind of the proposals it kept only; one that kept none is known by the
    diagnosis the reflection templates ask for, "what the wrong answers have in common")."""
    found: list[str] = []
    for cache in caches:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as db:
            for (value,) in db.execute("SELECT value FROM answers"):
                entry = json.loads(value)
                if not isinstance(entry, dict) or "raw" not in entry:
                    continue  # a scoring answer
                kinds = {proposal[1] for proposal in entry.get("proposals", [])}
                wrote = any("wrong answer" in raw.lower() for raw in entry["raw"])
                if kinds & set(VARIANT_KINDS) or wrote:
                    found += entry["raw"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caches", type=Path, nargs="+", default=None)
    parser.add_argument("--max-chars", type=int, default=400)
    parser.add_argument("--show", default=None, metavar="VERDICT", help="print these answers")
    args = parser.parse_args(argv)
    caches = args.caches or sorted(RESULTS.glob("proposals-cache-*.sqlite3"))
    if not caches:
        parser.error(f"no proposals bench caches under {RESULTS}: run bench/proposals.py")
    texts = answers(caches)
    verdicts: Counter[str] = Counter()
    for text in texts:
        _, why = judge_revision(text, max_chars=args.max_chars)
        verdict = why or "kept"
        verdicts[verdict] += 1
        if verdict == args.show:
            print(f"----- {verdict}\n{text}\n")
    print(f"{len(texts)} reflection and merge answers in {len(caches)} caches")
    for verdict, count in verdicts.most_common():
        print(f"  {verdict:16s} {count:5d}  {count / max(len(texts), 1):6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
