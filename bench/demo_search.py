"""The demo search on a real model: the held-out score of the winner with and without searching
the demo sets (`demo_search`), at the same scoring budget, on the 24 instruction-induction tasks
(Honovich et al. 2022, ../shared/data/instruction_induction).

For each task, two studies with the same seed, pools, budget and models (Qwen2.5-Coder-0.5B
by default, run by llama.cpp on one thread, as target and proposal model; chat, the default
three scoring demos; 6 proposals, then two variant rounds of two leaders with two variants
each): ``fixed``, every candidate shown the study's fixed demos, and
``searched``, with `demo_search` on (each variant round also races demo sets for its leader).
Both spend the same scoring calls (`--budget`); the searched study's bootstrap runs of the
leader on the demo pool are proposal calls, reported beside. Each study's winner is scored on
the task's own test file (`--test-size` examples of it); the report gives per task both
held-out scores, their difference, and over the tasks the mean difference with a paired
bootstrap 95 % interval and how many tasks gained or lost.

The two studies share one response cache: the searched study replays the fixed one's answers
up to the first demo set (the same prompts, answered the same, at temperature 0 -- and the
proposals, sampled in the same order), so it pays only for what differs. Results are written
after every study (``--out``): a run stopped part-way is resumed by running it again.

    nice -n 10 .venv/bin/python bench/demo_search.py > bench/results/demo_search.log 2>&1 &
    .venv/bin/python bench/demo_search.py --tasks antonyms sum --budget 120     # quicker
    .venv/bin/python bench/demo_search.py --report                             # the table only
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from engine.app import optimize

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA = ROOT.parent.parent / "shared" / "data" / "instruction_induction" / "induce"
TASKS = tuple(sorted(p.stem for p in DATA.glob("*.json"))) if DATA.is_dir() else ()
MODEL = Path.home() / ".cache/ape-engine/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
ARMS = ("fixed", "searched")


def study(task: str, arm: str, args: argparse.Namespace) -> dict[str, Any]:
    """One study of `task` with the demo search off (fixed) or on (searched)."""
    journals = Path(args.out).with_suffix("") / "journals"
    journal = journals / f"{task}-{arm}.jsonl"
    journal.unlink(missing_ok=True)  # a study cut short is run again (the cache has its calls)
    journal.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = optimize(
        str(DATA / f"{task}.json"),
        backend="local",
        local_model=str(args.model),
        local_threads=args.threads,
        model="bench-model",
        demo_search=arm == "searched",
        budget_scoring_calls=args.budget,
        initial_candidates=args.candidates,
        variant_rounds=2,
        variant_leaders=2,
        variants_per_leader=2,
        scoring_size=args.scoring_size,
        test_size=args.test_size,
        seed=args.seed,
        concurrency=2,
        cache=str(Path(args.out).with_suffix(".cache.sqlite3")),
        journal=str(journal),
    )
    winner = result.winner
    arms = {c.arm: c for c in result.candidates}
    chosen = arms.get(result.winner_arm) if result.winner_arm is not None else None
    spend = result.to_json()["spend"]
    return {
        "status": result.status,
        "test_score": winner.test_score if winner else None,
        "test_ci": list(winner.test_ci) if winner else None,
        "n": winner.n if winner else 0,
        "winner": winner.instruction if winner else None,
        "winner_origin": chosen.origin if chosen else None,
        "winner_demos": [list(pair) for pair in winner.demos] if winner and winner.demos else None,
        "human": result.human.test_score if result.human else None,
        "scoring_calls": result.spend.scoring_calls,
        "proposal_calls": result.spend.proposal_calls,
        "demo_calls": result.proposals.get("demos", {}).get("calls", 0),
        "candidates": len(result.candidates),
        "demo_candidates": sum(c.origin == "demos" for c in result.candidates),
        "tokens": spend["tokens"],
        "seconds": round(time.monotonic() - started, 1),
    }


def paired_interval(diffs: list[float], seed: int = 0, draws: int = 10_000) -> tuple[float, float]:
    """A 95 % bootstrap interval of the mean of paired differences (tasks resampled)."""
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(draws))
    return means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


def report(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| task | fixed demos | searched demos | difference | winner (searched) | demo calls |",
        "|---|---|---|---|---|---|",
    ]
    diffs = []
    for task in sorted(results):
        both = results[task]
        if not all(arm in both and both[arm]["test_score"] is not None for arm in ARMS):
            continue
        fixed, searched = both["fixed"], both["searched"]
        diff = searched["test_score"] - fixed["test_score"]
        diffs.append(diff)
        lines.append(
            f"| {task} | {fixed['test_score']:.3f} | {searched['test_score']:.3f} | {diff:+.3f} | "
            f"{searched['winner_origin']} | {searched['demo_calls']} |"
        )
    if diffs:
        low, high = paired_interval(diffs)
        gained = sum(d > 0 for d in diffs)
        lost = sum(d < 0 for d in diffs)
        lines.append(
            f"\nOver {len(diffs)} tasks: mean difference (searched - fixed) {statistics.fmean(diffs):+.4f}, "
            f"paired bootstrap 95 % interval [{low:+.4f}, {high:+.4f}]; {gained} tasks gained, "
            f"{lost} lost, {len(diffs) - gained - lost} tied."
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=int, default=150, help="scoring calls of each study")
    parser.add_argument("--candidates", type=int, default=6, help="the first batch's")
    parser.add_argument("--scoring-size", type=int, default=100)
    parser.add_argument("--test-size", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "demo_search.json"))
    parser.add_argument("--report", action="store_true", help="print the table of --out")
    args = parser.parse_args()
    out = Path(args.out)
    results: dict[str, dict[str, Any]] = json.loads(out.read_text()) if out.is_file() else {}
    if not args.report:
        if not TASKS:
            print(f"no instruction-induction data at {DATA}", file=sys.stderr)
            return 2
        for task in args.tasks:
            for arm in ARMS:
                if arm in results.get(task, {}):
                    continue
                row = study(task, arm, args)
                results.setdefault(task, {})[arm] = row
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(results, indent=1) + "\n")
                print(
                    f"{time.strftime('%H:%M:%S')} {task} {arm}: held out {row['test_score']} "
                    f"(winner {row['winner_origin']}), {row['scoring_calls']} scoring + "
                    f"{row['proposal_calls']} proposal calls, {row['seconds']} s",
                    flush=True,
                )
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
