"""The scheduler on real models' rewards: every policy replayed on the recorded full evaluations
in bench/recordings/ (made by bench/record.py; format in bench/recordings/README.md), with no
model call.

A recording holds, for each of the 24 instruction-induction tasks, a fixed pool of candidates
scored once on every example of a scoring pool, so each candidate's true score on the pool and
the true best are known. For each recording, tolerance, policy, task and seed, a study is
replayed with `--in-flight` pulls outstanding that complete in random order (bench/_bandit_sim.py,
the dispatcher's model) and no budget: each policy runs until its own rule ends it. Reported per
recording, tolerance and policy: the share of runs whose pick is within 0.01 of the pool's best
and within the tolerance, the cost as a share of full evaluation (candidates x examples), and
for policies with a proof, the share of runs it proved; beside them the floor of
`floor_cost`: what any procedure built from valid pairwise tests must spend on these pools.

    .venv/bin/python bench/real_selection.py                    # every recording, ~10 min each
    .venv/bin/python bench/real_selection.py --seeds 3 --tasks antonyms sum
    .venv/bin/python bench/real_selection.py --engine --seeds 2 # through the engine's Study

``--engine`` runs the same studies through the real `Study` (dispatcher, monitor, policy) against
a scorer that reads the recording instead of the replay loop (slower; F-Race is not an engine
policy and is left out). ``--reuse`` is accepted and changes nothing: this bench never calls a
model (bench/record.py makes recordings). Writes bench/results/real_selection.json and prints
Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import combinations
from math import comb
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bandit_sim import run_policy
from recording import RecordedTask, read, recordings, tables

RESULTS = Path(__file__).resolve().parent / "results"
POLICIES = ("paired", "lucb", "ape-filter", "frace")
STRICT = 0.01
LABELS = {
    "paired": "`paired` (the new default)",
    "lucb": "`lucb` (today's)",
    "ape-filter": "`ape-filter` (the paper's)",
    "frace": "F-Race (irace's)",
}


def default_epsilon(n: int) -> float:
    return max(2.0 / n, 0.005)


def floor_cost(table: np.ndarray, epsilon: float, pair_delta: float) -> float:
    """A lower bound on the cost of proving the best arm epsilon-good by valid pairwise tests at
    level `pair_delta` on any [0, 1] rewards, as a share of full evaluation.

    For each other arm b, raising b's k lowest rewards to 1 (k the fewest that put b more than
    epsilon ahead of the best) gives a pool where the claim is false; a test that sees none of
    those k examples sees the same data on both pools, so it may accept only if missing them is
    rarer than `pair_delta`: C(n - k, c) / C(n, c) <= pair_delta after c shared examples. The
    floor is the sum of those c over b, plus the largest for the best arm itself.
    """
    arms, n = table.shape
    means = table.mean(axis=1)
    best = int(np.argmax(means))
    needed = []
    for arm in range(arms):
        if arm == best:
            continue
        gain = np.cumsum(np.sort(1.0 - table[arm])[::-1]) / n
        k = min(int(np.searchsorted(gain, epsilon + means[best] - means[arm], side="right")) + 1, n)
        needed.append(
            next((c for c in range(n + 1) if comb(n - k, c) <= pair_delta * comb(n, c)), n)
        )
    return (sum(needed) + max(needed, default=0)) / table.size


def pairing_gain(table: np.ndarray, top: int = 5) -> float:
    """How much pairing narrows a comparison among the `top` candidates of a pool: the median
    over their pairs of (var a + var b) / var(a - b) across examples. A bound on a difference
    needs about that many times fewer examples from the pairs than from two separate arms; 1
    when example difficulty is not shared, inf when two of them differ by the same amount on
    every example."""
    means = table.mean(axis=1)
    best = np.argsort(-means)[: min(top, len(means))]
    ratios = []
    for a, b in combinations(best, 2):
        apart = float(table[a].var() + table[b].var())
        paired = float((table[a] - table[b]).var())
        if apart > 0:
            ratios.append(apart / paired if paired > 1e-12 * apart else float("inf"))
    return float(np.median(ratios)) if ratios else 1.0


def task_floors(tasks: list[RecordedTask], fixed: float | None) -> tuple[float, float]:
    """The mean floor over tasks with a share delta / (2 K) for each rival's test (what paired
    and lucb give it), and with all of delta for each (the least any proof could pay)."""
    union, single = [], []
    for task in tasks:
        arms, n = task.rewards.shape
        epsilon = fixed or default_epsilon(n)
        union.append(floor_cost(task.rewards, epsilon, 0.05 / (2 * arms)))
        single.append(floor_cost(task.rewards, epsilon, 0.05))
    return float(np.mean(union)), float(np.mean(single))


def _job(job: tuple[np.ndarray, bool, str, int, int, float, float | None]) -> dict[str, Any]:
    table, binary, name, seed, in_flight, epsilon, budget = job
    outcome = run_policy(
        table,
        name,
        seed=seed,
        in_flight=in_flight,
        epsilon=epsilon,
        scoring_calls=None if budget is None else max(1, int(budget * table.size)),
        rewards="binary" if binary else "continuous",
        certify=name in ("paired", "lucb"),
    )
    return {
        "cost": outcome.pulls / table.size,
        "gap": outcome.regret,
        "proven": outcome.proven,
        "supported": outcome.supported,
    }


def _plans(args: argparse.Namespace) -> list[tuple[str, str, float | None]]:
    """(row name, policy, budget): every policy to its own end, then the budgeted ones."""
    plans: list[tuple[str, str, float | None]] = [(name, name, None) for name in args.policies]
    for budget in args.budgets:
        plans += [(f"{name}, budget {budget:.0%}", name, budget) for name in ("paired", "lucb")]
    return plans


def run_replay(args: argparse.Namespace, tasks: list[RecordedTask]) -> list[dict[str, Any]]:
    jobs, keys = [], []
    for label, fixed in _tolerances(args):
        for row, name, budget in _plans(args):
            for task in tasks:
                epsilon = fixed or default_epsilon(task.rewards.shape[1])
                for seed in range(args.seeds):
                    jobs.append(
                        (task.rewards, task.binary, name, seed, args.in_flight, epsilon, budget)
                    )
                    keys.append((label, row, task.name, seed, epsilon))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        outcomes = list(pool.map(_job, jobs, chunksize=max(1, len(jobs) // (8 * args.workers))))
    return [
        {"tolerance": label, "policy": name, "task": task, "seed": seed, "epsilon": epsilon, **o}
        for (label, name, task, seed, epsilon), o in zip(keys, outcomes, strict=True)
    ]


def _tolerances(args: argparse.Namespace) -> list[tuple[str, float | None]]:
    return [("0.01", STRICT), ("default (2 / n)", None)][: 2 if args.default_too else 1]


def run_engine(args: argparse.Namespace, tasks: list[RecordedTask]) -> list[dict[str, Any]]:
    from engine_replay import engine_study

    runs = []
    for label, fixed in _tolerances(args):
        for name in [p for p in args.policies if p != "frace"]:
            for task in tasks:
                epsilon = fixed or default_epsilon(task.rewards.shape[1])
                for seed in range(args.seeds):
                    outcome = engine_study(task, name, seed, args.in_flight, epsilon)
                    runs.append({"tolerance": label, "policy": name, "task": task.name,
                                 "seed": seed, "epsilon": epsilon, **outcome})  # fmt: skip
    return runs


def summary(runs: list[dict[str, Any]], epsilons: dict[str, float]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for run in runs:
        rows.setdefault(run["tolerance"], {}).setdefault(run["policy"], []).append(run)
    table: dict[str, Any] = {}
    for tolerance, by_policy in rows.items():
        table[tolerance] = {}
        for policy, mine in by_policy.items():
            gaps = np.array([r["gap"] for r in mine])
            eps = np.array([r["epsilon"] for r in mine])
            proven = [r["proven"] for r in mine if r["proven"] is not None]
            supported = [r["supported"] for r in mine if r["supported"] is not None]
            table[tolerance][policy] = {
                "runs": len(mine),
                "supported_mean": float(np.mean(supported)) if supported else None,
                "within_strict": float(np.mean(gaps <= STRICT + 1e-12)),
                "within_epsilon": float(np.mean(gaps <= eps + 1e-12)),
                "cost_mean": float(np.mean([r["cost"] for r in mine])),
                "cost_max": float(np.max([r["cost"] for r in mine])),
                "gap_max": float(gaps.max()),
                "proven": float(np.mean(proven)) if proven else None,
            }
    return table


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test of `wins` against `losses` (the ties left out)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(wins, losses) + 1)) / (1 << n)
    return min(1.0, 2.0 * tail)


def budget_duels(runs: list[dict[str, Any]]) -> list[str]:
    """For each tolerance and budget, `paired` against `lucb` on the same task and seed: the
    runs where only one of them picks within 0.01, and the sign test of the two counts."""
    within = {(r["tolerance"], r["policy"], r["task"], r["seed"]): r["gap"] <= STRICT + 1e-12
              for r in runs}  # fmt: skip
    duels: dict[tuple[str, str], list[int]] = {}
    for (tolerance, policy, task, seed), mine in within.items():
        if not policy.startswith("paired, "):
            continue
        theirs = within.get((tolerance, policy.replace("paired", "lucb", 1), task, seed))
        if theirs is None:
            continue
        count = duels.setdefault((tolerance, policy.removeprefix("paired, ")), [0, 0])
        count[0] += mine and not theirs
        count[1] += theirs and not mine
    lines = []
    for (tolerance, budget), (wins, losses) in duels.items():
        p = sign_test(wins, losses)
        shown = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
        lines.append(f"\nAt {tolerance}, {budget}: within 0.01 with `paired` only in {wins} runs, "
                     f"with `lucb` only in {losses} (same task and seed; sign test {shown}).")  # fmt: skip
    return lines


def markdown(report: dict[str, Any]) -> str:
    lines = []
    for recording in report["recordings"]:
        lines.append(f"\n**{recording['file']}** ({recording['model']}, {recording['scoring']}; "
                     f"{recording['tasks']} tasks x {report['seeds']} seeds, "
                     f"{report['in_flight']} in flight, no budget)\n")  # fmt: skip
        lines.append("| tolerance | policy | pick within 0.01 | within the tolerance | "
                     "cost / full (mean, max) | proven | tolerance supported (mean) |")  # fmt: skip
        lines.append("|---|---|---|---|---|---|---|")
        for tolerance, rows in recording["summary"].items():
            for policy, row in rows.items():
                proven = "-" if row["proven"] is None else f"{row['proven']:.0%}"
                supported = row["supported_mean"]
                supported_text = "-" if supported is None else f"{supported:.3f}"
                lines.append(
                    f"| {tolerance} | {LABELS.get(policy, policy)} | {row['within_strict']:.1%} | "
                    f"{row['within_epsilon']:.1%} | {row['cost_mean']:.3f}, {row['cost_max']:.3f} "
                    f"| {proven} | {supported_text} |"
                )
        lines += budget_duels(recording["runs"])
        gains = np.array(list(recording["pairing_gain"].values()))
        if len(gains):
            low, middle, high = np.quantile(gains, [0.25, 0.5, 0.75])
            lines.append(f"\nPairing gain among each task's top five, (var a + var b) / "
                         f"var(a - b): median {middle:.1f} over tasks (quartiles {low:.1f}, "
                         f"{high:.1f}).")  # fmt: skip
        for tolerance, (union, single) in recording["floors"].items():
            lines.append(f"\nFloor of a proof at {tolerance}: {union:.2f} of full evaluation with "
                         f"delta / (2 K) per rival, {single:.2f} with all of delta per rival.")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=Path, nargs="+", default=None)
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument("--strict-only", dest="default_too", action="store_false",
                        help="only the 0.01 tolerance (default: also 2 / n)")  # fmt: skip
    parser.add_argument("--budgets", type=float, nargs="*", default=[0.1, 0.35],
                        help="shares of full evaluation for paired and lucb with a budget")  # fmt: skip
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1) // 2))
    parser.add_argument("--engine", action="store_true", help="through the engine's Study")
    parser.add_argument("--reuse", action="store_true", help="(always: no model is called)")
    parser.add_argument("--out", type=Path, default=RESULTS / "real_selection.json")
    args = parser.parse_args(argv)
    files = args.recordings or recordings()
    if not files:
        parser.error("no recordings: make one with bench/record.py")
    began = time.perf_counter()
    report: dict[str, Any] = {"seeds": args.seeds, "in_flight": args.in_flight, "recordings": []}
    for path in files:
        data = read(path)
        tasks = [t for t in tables(data) if args.tasks is None or t.name in args.tasks]
        runs = run_engine(args, tasks) if args.engine else run_replay(args, tasks)
        floors = {label: task_floors(tasks, fixed) for label, fixed in _tolerances(args)}
        gains = {task.name: pairing_gain(task.rewards) for task in tasks}
        report["recordings"].append({
            "file": path.name, "model": data.get("model_file", data["model"]),
            "scoring": data["scoring"], "tasks": len(tasks), "floors": floors,
            "pairing_gain": gains, "summary": summary(runs, {}), "runs": runs,
        })  # fmt: skip
        print(markdown({**report, "recordings": report["recordings"][-1:]}), flush=True)
    report["seconds"] = time.perf_counter() - began
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{report['seconds']:.0f} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
