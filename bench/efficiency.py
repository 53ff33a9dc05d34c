"""Scheduler efficiency: cost and correctness of every policy on the same instances.

Common random numbers: every policy runs on the same reward tables, seeds and example order.
Instances are synthetic (a Beta mixture of many mediocre and ~10 % good arms with correlated
example difficulty) or replayed from saved K x n score tables (`--table FILE.npy`, one or more).
For each policy and pulls-in-flight level: median and p90 cost as a share of full evaluation and
as a ratio to the oracle (Garivier-Kaufmann T*, finite-population adjusted), the probability of an
epsilon-good pick with its Clopper-Pearson 95 % interval, mean and max regret; then fixed-budget
curves (probability correct at 5-40 % of full cost). Writes JSON (and a PNG of the curves) to
bench/results/ and prints the project's goals for the scheduler beside the results.

    .venv/bin/python bench/efficiency.py                 # K=50, n=200, 100 instances
    .venv/bin/python bench/efficiency.py --instances 20  # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.stats import beta as beta_distribution

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bandit_sim import Outcome, run_policy, synthetic_table

from engine.search.oracle import lower_bound_samples

RESULTS = Path(__file__).resolve().parent / "results"
ADAPTIVE = ("lucb", "ttts", "ape-filter")
FIXED_BUDGET = ("halving", "ucb", "uniform")


def clopper_pearson(successes: int, trials: int) -> tuple[float, float]:
    low = (
        0.0
        if successes == 0
        else float(beta_distribution.ppf(0.025, successes, trials - successes + 1))
    )
    high = (
        1.0
        if successes == trials
        else float(beta_distribution.ppf(0.975, successes + 1, trials - successes))
    )
    return low, high


def summarise(outcomes: list, tables: list[np.ndarray], oracle: list[float]) -> dict[str, float]:
    cost = np.array([o.pulls / t.size for o, t in zip(outcomes, tables, strict=True)])
    versus_oracle = np.array([o.pulls / max(b, 1.0) for o, b in zip(outcomes, oracle, strict=True)])
    correct = sum(o.correct for o in outcomes)
    low, high = clopper_pearson(correct, len(outcomes))
    regret = np.array([o.regret for o in outcomes])
    return {
        "cost_median": float(np.median(cost)),
        "cost_p90": float(np.quantile(cost, 0.9)),
        "oracle_ratio_median": float(np.median(versus_oracle)),
        "p_correct": correct / len(outcomes),
        "p_correct_ci": [low, high],
        "wrong": len(outcomes) - correct,
        "regret_mean": float(regret.mean()),
        "regret_max": float(regret.max()),
    }


def _job(job: tuple[np.ndarray, str, int, int, float, int | None]) -> Outcome:
    table, name, seed, in_flight, delta, budget = job
    rewards = "binary" if np.isin(table, (0.0, 1.0)).all() else "continuous"
    return run_policy(
        table,
        name,
        seed=seed,
        in_flight=in_flight,
        delta=delta,
        scoring_calls=budget,
        rewards=rewards,
    )


def _oracle(table: np.ndarray, delta: float) -> float:
    mu = table.mean(axis=1)
    top = np.argsort(-mu)[:8]  # the oracle's cost is dominated by the arms near the best
    rest = table.shape[0] - len(top)  # the others: one pull each (exact-best oracle, fast)
    return lower_bound_samples(mu[top], delta, table.shape[1]) + rest


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--arms", type=int, default=50)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4])
    parser.add_argument(
        "--sizes",
        nargs="*",
        default=["50x500", "200x200", "200x500"],
        help="further KxN synthetic sizes, run at the largest in-flight level (none: skip)",
    )
    parser.add_argument("--size-instances", type=int, default=6)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--table", type=Path, nargs="*", default=[], help="replay saved K x n tables (.npy)"
    )
    args = parser.parse_args()

    if args.table:
        tables = [np.load(path) for path in args.table]
    else:
        tables = [
            synthetic_table(np.random.default_rng(i), args.arms, args.n)
            for i in range(args.instances)
        ]
    started = time.perf_counter()
    pool = ProcessPoolExecutor(max_workers=args.workers)

    def run_all(
        group: list[np.ndarray], name: str, flight: int, share: float | None = None
    ) -> list[Outcome]:
        jobs = [
            (t, name, i, flight, args.delta, None if share is None else int(share * t.size))
            for i, t in enumerate(group)
        ]
        return list(pool.map(_job, jobs, chunksize=max(1, len(jobs) // (4 * args.workers))))

    oracle = list(pool.map(_oracle, tables, [args.delta] * len(tables)))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in ADAPTIVE:
        results[name] = {}
        for flight in args.in_flight:
            results[name][str(flight)] = summarise(run_all(tables, name, flight), tables, oracle)
            row = results[name][str(flight)]
            print(f"{name:>10} in flight {flight:>4}: cost median {row['cost_median']:.3f} p90 {row['cost_p90']:.3f}  "
                  f"x oracle {row['oracle_ratio_median']:.2f}  wrong {row['wrong']}/{len(tables)}  "
                  f"regret mean {row['regret_mean']:.4f} max {row['regret_max']:.3f}", flush=True)  # fmt: skip
    curves: dict[str, dict[str, dict[str, float]]] = {}
    flight = max(args.in_flight)
    for name in (*FIXED_BUDGET, "lucb", "ttts"):
        curves[name] = {}
        for share in args.budgets:
            outcomes = run_all(tables, name, flight, share)
            curves[name][str(share)] = summarise(outcomes, tables, oracle)
            row = curves[name][str(share)]
            print(f"{name:>10} budget {share:.0%}: P(eps-good) {row['p_correct']:.2f} "
                  f"[{row['p_correct_ci'][0]:.2f}, {row['p_correct_ci'][1]:.2f}]  regret mean {row['regret_mean']:.4f}",
                  flush=True)  # fmt: skip
    sizes: dict[str, dict[str, dict[str, float]]] = {}
    for size in args.sizes:
        arms, n = (int(x) for x in size.lower().split("x"))
        group = [
            synthetic_table(np.random.default_rng(10_000 + i), arms, n)
            for i in range(args.size_instances)
        ]
        group_oracle = list(pool.map(_oracle, group, [args.delta] * len(group)))
        sizes[size] = {}
        for name in ADAPTIVE:
            sizes[size][name] = summarise(run_all(group, name, flight), group, group_oracle)
            row = sizes[size][name]
            print(f"{size:>8} {name:>10} in flight {flight}: cost median {row['cost_median']:.3f}  "
                  f"x oracle {row['oracle_ratio_median']:.2f}  wrong {row['wrong']}/{len(group)}", flush=True)  # fmt: skip
    pool.shutdown()
    seconds = time.perf_counter() - started

    lucb, ttts = results["lucb"], results["ttts"]
    top, one = str(max(args.in_flight)), str(min(args.in_flight))
    tenth = str(min(args.budgets, key=lambda b: abs(b - 0.1)))
    goals = [
        ("lucb cost <= 0.25 of full", lucb[top]["cost_median"], lucb[top]["cost_median"] <= 0.25),
        ("lucb wrong picks <= delta", lucb[top]["wrong"] / len(tables), lucb[top]["wrong"] / len(tables) <= args.delta),
        ("ttts cost <= 0.20 of full", ttts[top]["cost_median"], ttts[top]["cost_median"] <= 0.20),
        ("ttts wrong picks <= delta", ttts[top]["wrong"] / len(tables), ttts[top]["wrong"] / len(tables) <= args.delta),
        ("lucb cost@256 <= 1.25 x cost@1", lucb[top]["cost_median"] / lucb[one]["cost_median"],
         lucb[top]["cost_median"] / lucb[one]["cost_median"] <= 1.25),
        ("halving P(eps-good) at 10% >= 0.85", curves["halving"][tenth]["p_correct"], curves["halving"][tenth]["p_correct"] >= 0.85),
        ("halving ahead of ucb and uniform at 10%", curves["halving"][tenth]["p_correct"],
         curves["halving"][tenth]["p_correct"] > max(curves["ucb"][tenth]["p_correct"], curves["uniform"][tenth]["p_correct"])),
    ]  # fmt: skip
    print(f"\nK={tables[0].shape[0]} n={tables[0].shape[1]} delta={args.delta} instances={len(tables)} "
          f"in flight={top}  ({seconds:.0f} s)")  # fmt: skip
    print(f"{'goal':<42} {'measured':>9}  met")
    for goal, value, met in goals:
        print(f"{goal:<42} {value:>9.3f}  {'yes' if met else 'NO'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "efficiency.json"
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "adaptive": results,
                               "fixed_budget": curves, "sizes": sizes, "goals": [[g, v, m] for g, v, m in goals],
                               "seconds": seconds}, indent=2))  # fmt: skip
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(6, 4))
        for name, curve in curves.items():
            shares = [float(s) for s in curve]
            axis.plot(shares, [curve[s]["p_correct"] for s in curve], marker="o", label=name)
        axis.set_xlabel("budget (share of full evaluation)")
        axis.set_ylabel("P(epsilon-good pick)")
        axis.legend()
        figure.tight_layout()
        figure.savefig(RESULTS / "efficiency.png", dpi=100)
    except ImportError:
        pass
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
