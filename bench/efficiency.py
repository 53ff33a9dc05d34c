"""Scheduler efficiency: cost and correctness of every policy on the same instances.

Common random numbers: every policy runs on the same reward tables, seeds and example order.
Instances are synthetic (a Beta mixture of many mediocre and ~10 % good arms with correlated
example difficulty) or replayed from saved K x n score tables (`--table FILE.npy`, one or more).
For each policy and pulls-in-flight level: median and p90 cost as a share of full evaluation and
as a ratio to two oracles (Garivier-Kaufmann T* for independent arms, and the cost of comparing
every arm with the best on shared examples, `paired_lower_bound_samples`; both
finite-population adjusted), the probability of an epsilon-good pick with its Clopper-Pearson 95 %
interval, mean and max regret; then fixed-budget curves (probability correct at 5-40 % of full
cost), larger sizes, and instances whose example difficulty is strongly shared (near copies of an
instruction, and the simulator's world with a wide spread of difficulty), where the guarantee is
checked again. F-Race (bench/frace.py) runs beside the engine's policies. Writes JSON (and a PNG
of the curves) to bench/results/ and prints the project's goals for the scheduler beside the
results.

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
from _bandit_sim import Outcome, near_copies_table, run_policy, simulator_table, synthetic_table

from engine.search.oracle import lower_bound_samples, paired_lower_bound_samples

RESULTS = Path(__file__).resolve().parent / "results"
ADAPTIVE = ("paired", "lucb", "ttts", "ape-filter", "frace")
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


def summarise(
    outcomes: list, tables: list[np.ndarray], oracle: list[float], paired: list[float] | None = None
) -> dict[str, float]:
    cost = np.array([o.pulls / t.size for o, t in zip(outcomes, tables, strict=True)])
    versus_oracle = np.array([o.pulls / max(b, 1.0) for o, b in zip(outcomes, oracle, strict=True)])
    versus_paired = np.array(
        [o.pulls / max(b, 1.0) for o, b in zip(outcomes, paired or oracle, strict=True)]
    )
    correct = sum(o.correct for o in outcomes)
    low, high = clopper_pearson(correct, len(outcomes))
    regret = np.array([o.regret for o in outcomes])
    return {
        "cost_median": float(np.median(cost)),
        "cost_mean": float(np.mean(cost)),
        "cost_p90": float(np.quantile(cost, 0.9)),
        "oracle_ratio_median": float(np.median(versus_oracle)),
        "paired_oracle_ratio_median": float(np.median(versus_paired)),
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


def _paired_oracle(table: np.ndarray, delta: float) -> float:
    return paired_lower_bound_samples(table, delta, max(2.0 / table.shape[1], 0.005))


def correlated_sets(args: argparse.Namespace) -> dict[str, list[np.ndarray]]:
    """Instances whose example difficulty the arms strongly share."""
    count = args.correlated_instances
    return {
        "near copies": [
            near_copies_table(np.random.default_rng(20_000 + i), args.arms, args.n)
            for i in range(count)
        ],
        "simulator, difficulty spread 4": [
            simulator_table(30_000 + i, args.arms, args.n, spread=4.0) for i in range(count)
        ],
    }


def _print_adaptive(name: str, flight: int, row: dict[str, float], count: int) -> None:
    print(f"{name:>10} in flight {flight:>4}: cost median {row['cost_median']:.3f} "
          f"mean {row['cost_mean']:.3f} p90 {row['cost_p90']:.3f}  x oracle "
          f"{row['oracle_ratio_median']:.2f}  x paired oracle {row['paired_oracle_ratio_median']:.2f}"
          f"  wrong {row['wrong']}/{count}  regret mean {row['regret_mean']:.4f} "
          f"max {row['regret_max']:.3f}", flush=True)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument(
        "--correlated-instances", type=int, default=50, help="per strongly correlated set (0: skip)"
    )
    parser.add_argument("--policies", nargs="+", default=list(ADAPTIVE))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--table", type=Path, nargs="*", default=[], help="replay saved K x n tables (.npy)"
    )
    return parser


def main() -> int:
    args = _parser().parse_args()
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

    def oracles(group: list[np.ndarray]) -> tuple[list[float], list[float]]:
        deltas = [args.delta] * len(group)
        return list(pool.map(_oracle, group, deltas)), list(pool.map(_paired_oracle, group, deltas))

    oracle, paired_oracle = oracles(tables)
    print(f"oracle / full: median {np.median([o / t.size for o, t in zip(oracle, tables, strict=True)]):.3f}; "
          f"paired oracle / full: median "
          f"{np.median([o / t.size for o, t in zip(paired_oracle, tables, strict=True)]):.3f}", flush=True)  # fmt: skip
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in args.policies:
        results[name] = {}
        for flight in args.in_flight:
            outcomes = run_all(tables, name, flight)
            results[name][str(flight)] = summarise(outcomes, tables, oracle, paired_oracle)
            _print_adaptive(name, flight, results[name][str(flight)], len(tables))
    curves: dict[str, dict[str, dict[str, float]]] = {}
    flight = max(args.in_flight)
    for name in (*FIXED_BUDGET, "lucb", "ttts", "paired"):
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
        group_oracle, group_paired = oracles(group)
        sizes[size] = {}
        for name in args.policies:
            sizes[size][name] = summarise(
                run_all(group, name, flight), group, group_oracle, group_paired
            )
            row = sizes[size][name]
            print(f"{size:>8} {name:>10} in flight {flight}: cost median {row['cost_median']:.3f}  "
                  f"x oracle {row['oracle_ratio_median']:.2f}  wrong {row['wrong']}/{len(group)}", flush=True)  # fmt: skip
    correlated: dict[str, dict[str, dict[str, float]]] = {}
    for label, group in (correlated_sets(args) if args.correlated_instances else {}).items():
        group_oracle, group_paired = oracles(group)
        correlated[label] = {}
        for name in args.policies:
            row = summarise(run_all(group, name, flight), group, group_oracle, group_paired)
            correlated[label][name] = row
            print(f"{label}: ", end="")
            _print_adaptive(name, flight, row, len(group))
    pool.shutdown()
    seconds = time.perf_counter() - started
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "adaptive": results,
              "fixed_budget": curves, "sizes": sizes, "correlated": correlated, "seconds": seconds}  # fmt: skip
    report["goals"] = goals(args, results, curves, correlated, len(tables))
    print(f"\nK={tables[0].shape[0]} n={tables[0].shape[1]} delta={args.delta} instances={len(tables)} "
          f"in flight={flight}  ({seconds:.0f} s)")  # fmt: skip
    print(f"{'goal':<52} {'measured':>9}  met")
    for goal, value, met in report["goals"]:
        print(f"{goal:<52} {value:>9.3f}  {'yes' if met else 'NO'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "efficiency.json"
    out.write_text(json.dumps(report, indent=2))
    plot(curves)
    print(f"wrote {out}")
    return 0


def goals(
    args: argparse.Namespace,
    results: dict[str, dict[str, dict[str, float]]],
    curves: dict[str, dict[str, dict[str, float]]],
    correlated: dict[str, dict[str, dict[str, float]]],
    count: int,
) -> list[list[object]]:
    """The project's goals for the scheduler, with what was measured."""
    top, one = str(max(args.in_flight)), str(min(args.in_flight))
    tenth = str(min(args.budgets, key=lambda b: abs(b - 0.1)))
    rows: list[list[object]] = []
    if "paired" in results:
        paired = results["paired"][top]
        rows += [
            ["paired wrong picks at the top level = 0", paired["wrong"], paired["wrong"] == 0],
            ["paired cost <= 0.10 of full", paired["cost_median"], paired["cost_median"] <= 0.10],
            ["paired cost below lucb's", paired["cost_median"] / results["lucb"][top]["cost_median"],
             paired["cost_median"] < results["lucb"][top]["cost_median"]],
        ]  # fmt: skip
        for label, rows_of in correlated.items():
            share = rows_of["paired"]["wrong"] / args.correlated_instances
            rows.append([f"paired wrong picks <= delta ({label})", share, share <= args.delta])
    if "lucb" in results and "ttts" in results:
        lucb, ttts = results["lucb"], results["ttts"]
        rows += [
            ["lucb cost <= 0.25 of full", lucb[top]["cost_median"], lucb[top]["cost_median"] <= 0.25],
            ["lucb wrong picks <= delta", lucb[top]["wrong"] / count, lucb[top]["wrong"] / count <= args.delta],
            ["ttts cost <= 0.20 of full", ttts[top]["cost_median"], ttts[top]["cost_median"] <= 0.20],
            ["ttts wrong picks <= delta", ttts[top]["wrong"] / count, ttts[top]["wrong"] / count <= args.delta],
            ["lucb cost@256 <= 1.25 x cost@1", lucb[top]["cost_median"] / lucb[one]["cost_median"],
             lucb[top]["cost_median"] / lucb[one]["cost_median"] <= 1.25],
        ]  # fmt: skip
    halving = curves["halving"][tenth]["p_correct"]
    rows += [
        ["halving P(eps-good) at 10% >= 0.85", halving, halving >= 0.85],
        ["halving ahead of ucb and uniform at 10%", halving,
         halving > max(curves["ucb"][tenth]["p_correct"], curves["uniform"][tenth]["p_correct"])],
    ]  # fmt: skip
    return rows


def plot(curves: dict[str, dict[str, dict[str, float]]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        shares = [float(s) for s in curve]
        axis.plot(shares, [curve[s]["p_correct"] for s in curve], marker="o", label=name)
    axis.set_xlabel("budget (share of full evaluation)")
    axis.set_ylabel("P(epsilon-good pick)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "efficiency.png", dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
