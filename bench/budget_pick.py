"""The pick at a budget stop, replayed on the recorded real-model rewards (bench/recordings/).

The proposals bench stops every study on its budget (200 scoring calls over about 20
candidates), so the pick is read from about ten examples a candidate, and the variants, which
come last, from fewer. This replays that shape on each recording's tasks: a random 60 % of the
task's candidates at the start, 25 % of the calls kept for the rest, which join when the first
75 % are spent; 8 pulls in flight completing in random order (bench/_bandit_sim.py's model).
Every policy sees the same orders and seeds. Reported per recording and policy: the pick's mean
regret on the pool (the best candidate's pool mean less the pick's), the share of runs within
0.01 of the best, the share of picks that joined late, and the regret as a ratio to `paired-raw`
(the `paired` policy with its leader by raw mean, as it was before `engine.search.adjusted`),
run in the same process. Then the policy's CPU per pull on a synthetic pool of 200 candidates
and 400 examples (64 in flight), as a ratio to `paired-raw` (median of 3).

    .venv/bin/python bench/budget_pick.py             # every recording, 10 seeds, ~25 min
    .venv/bin/python bench/budget_pick.py --seeds 3

Writes bench/results/budget_pick.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bandit_sim import bench_policy, run_policy, synthetic_table
from recording import RecordedTask, read, recordings, tables

RESULTS = Path(__file__).resolve().parent / "results"
POLICIES = ("paired", "paired-raw", "lucb")
BASELINE = "paired-raw"
BUDGET, SHARE, EARLY, IN_FLIGHT = 200, 0.25, 0.6, 8


def budget_study(task: RecordedTask, name: str, seed: int) -> tuple[float, bool]:
    """One study on a task's K x n table: the pick's regret on the pool, and whether it joined
    late."""
    arms, n = task.rewards.shape
    rng = np.random.default_rng(seed)
    table = task.rewards[rng.permutation(arms)]
    early = max(2, int(arms * EARLY))
    policy = bench_policy(name, n=n, seed=seed, delta=0.05, epsilon=None, scoring_calls=None,
                          initial_arms=early, rewards="binary" if task.binary else "continuous")  # fmt: skip
    for _ in range(early):
        policy.add_arm()
    completion = np.random.default_rng(seed + 7919)
    outstanding: list[Any] = []

    def spend(limit: int) -> None:
        policy.set_budget(limit)
        while True:
            room = min(IN_FLIGHT - len(outstanding), limit - policy.pulls_used - len(outstanding))
            if room > 0:
                outstanding.extend(policy.select(room))
            if not outstanding:
                return
            pull = outstanding.pop(int(completion.integers(len(outstanding))))
            policy.observe(pull, float(table[pull.arm, pull.example]))

    spend(int(BUDGET * (1 - SHARE)))
    for _ in range(arms - early):
        policy.add_arm()
    spend(BUDGET)
    pick = policy.recommendation()
    assert pick is not None
    truth = table.mean(axis=1)
    return float(truth.max() - truth[pick]), pick >= early


def cpu_per_pull(name: str) -> float:
    table = synthetic_table(np.random.default_rng(1), 200, 400)
    start = time.process_time()
    outcome = run_policy(table, name, seed=0, in_flight=64, scoring_calls=200 * 400 // 5)
    return (time.process_time() - start) / outcome.pulls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    results: dict[str, Any] = {"budget": BUDGET, "share": SHARE, "early": EARLY,
                               "in_flight": IN_FLIGHT, "seeds": args.seeds, "recordings": {}}  # fmt: skip
    print(f"| recording | policy | mean regret | within 0.01 | late picks | regret / {BASELINE} |")
    print("|---|---|---|---|---|---|")
    for path in recordings():
        tasks = tables(read(path))
        rows: dict[str, dict[str, float]] = {}
        for name in POLICIES:
            runs = [budget_study(task, name, seed)
                    for task in tasks for seed in range(args.seeds)]  # fmt: skip
            regret = np.array([r for r, _ in runs])
            rows[name] = {"mean_regret": float(regret.mean()),
                          "within_0.01": float((regret <= 0.01 + 1e-12).mean()),
                          "late_picks": float(np.mean([late for _, late in runs])),
                          "runs": len(runs)}  # fmt: skip
        for name, row in rows.items():
            ratio = row["mean_regret"] / max(rows[BASELINE]["mean_regret"], 1e-12)
            row["ratio"] = ratio
            print(f"| {path.name} ({len(tasks)} tasks) | `{name}` | {row['mean_regret']:.4f} | "
                  f"{row['within_0.01']:.0%} | {row['late_picks']:.0%} | {ratio:.2f} |")  # fmt: skip
        results["recordings"][path.name] = rows
    cpu = {name: statistics.median(cpu_per_pull(name) for _ in range(3))
           for name in ("paired", BASELINE)}  # fmt: skip
    results["cpu_per_pull_s"] = cpu
    print(f"\nCPU per pull, 200 candidates x 400 examples, 64 in flight: `paired` "
          f"{cpu['paired'] * 1e3:.2f} ms, `{BASELINE}` {cpu[BASELINE] * 1e3:.2f} ms "
          f"(ratio {cpu['paired'] / cpu[BASELINE]:.2f}, median of 3)")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "budget_pick.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
