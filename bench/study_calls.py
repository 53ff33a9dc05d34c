"""Whole studies against the simulator: share of full evaluation, and the true quality of the pick.

The goal: the study picks an instruction whose TRUE quality (the simulator's latent
quality, read from its debug route /v1/sim/quality) is within epsilon of the best candidate it
saw, in at most 35 % of the scoring calls of full evaluation (every candidate on the whole
scoring pool). Each run is a real study (proposals, variants, policy, client) against the
in-process simulator serving the task with the run's seed; full evaluation is the baseline
counted in the same run (candidates x pool size). Prints a table and writes JSON to
bench/results/study_calls.json.

    .venv/bin/python bench/study_calls.py                       # paired, lucb and ttts, 10 seeds
    .venv/bin/python bench/study_calls.py --policy lucb --seeds 3 --epsilon 0.05
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.app import StudyConfig, execute, prepare
from engine.sim import SimConfig, serve_sim
from engine.task import load_task

RESULTS = Path(__file__).resolve().parent / "results"


async def true_quality(
    session: aiohttp.ClientSession, base_url: str, text: str, task: str
) -> float:
    async with session.get(
        f"{base_url}/sim/quality", params={"instruction": text, "task": task}
    ) as response:
        response.raise_for_status()
        body: dict[str, Any] = await response.json()
        return float(body["quality"])


async def one_study(
    task_name: str, policy: str, seed: int, epsilon: float | None, scoring_size: int, folder: Path
) -> dict[str, Any]:
    task = load_task(task_name, seed=seed)
    async with serve_sim(SimConfig(tasks=(task,), seed=seed, debug_routes=True)) as server:
        config = StudyConfig.of(
            task=task_name,
            base_url=server.base_url,
            policy=policy,
            seed=seed,
            epsilon=epsilon,
            scoring_size=scoring_size,
            test_size=50,
            concurrency=16,
            no_cache=True,
            journal=str(folder / f"{task_name}-{policy}-{seed}.jsonl"),
        )
        started = time.perf_counter()
        result = await execute(prepare(config), say=lambda _: None)
        seconds = time.perf_counter() - started
        async with aiohttp.ClientSession() as session:
            qualities = [
                await true_quality(session, server.base_url, c.instruction, task.name)
                for c in result.candidates
            ]
            assert result.winner is not None
            picked = await true_quality(
                session, server.base_url, result.winner.instruction, task.name
            )
    tolerance = epsilon if epsilon is not None else 2 / result.n
    return {
        "task": task_name,
        "policy": policy,
        "seed": seed,
        "status": result.status,
        "candidates": len(result.candidates),
        "n": result.n,
        "scoring_calls": result.spend.scoring_calls,
        "full_evaluation_calls": result.full_evaluation_calls,
        "share": result.call_ratio,
        "picked_quality": picked,
        "best_quality": max(qualities),
        "regret": max(qualities) - picked,
        "epsilon": tolerance,
        "within_epsilon": picked >= max(qualities) - tolerance,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="larger_number")
    parser.add_argument("--policy", action="append", help="repeatable (paired, lucb and ttts)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epsilon", type=float, default=None, help="default: 2 / pool size")
    parser.add_argument("--scoring-size", type=int, default=200)
    args = parser.parse_args()
    policies = args.policy or ["paired", "lucb", "ttts"]
    folder = Path("/tmp") / f"ape-bench-{time.time_ns()}"
    folder.mkdir()
    runs = []
    for policy in policies:
        for seed in range(1, args.seeds + 1):
            run = anyio.run(
                one_study, args.task, policy, seed, args.epsilon, args.scoring_size, folder
            )
            runs.append(run)
            print(
                f"{policy:6} seed {seed:2}: {run['candidates']} candidates, "
                f"{run['scoring_calls']} / {run['full_evaluation_calls']} calls = "
                f"{run['share']:.3f}; picked q={run['picked_quality']:.3f}, best "
                f"q={run['best_quality']:.3f} ({'ok' if run['within_epsilon'] else 'MISS'})",
                flush=True,
            )
    print()
    print("policy  share median  mean   max    within eps   goal <= 0.35")
    summary = {}
    for policy in policies:
        shares = [r["share"] for r in runs if r["policy"] == policy]
        hits = sum(r["within_epsilon"] for r in runs if r["policy"] == policy)
        summary[policy] = {
            "share_median": statistics.median(shares),
            "share_mean": statistics.fmean(shares),
            "share_max": max(shares),
            "within_epsilon": hits,
            "runs": len(shares),
        }
        if max(shares) <= 0.35:
            met = "met by every run"
        elif statistics.median(shares) <= 0.35:
            met = "met by the median only"
        else:
            met = "NOT met"
        print(
            f"{policy:6}  {statistics.median(shares):.3f}         {statistics.fmean(shares):.3f}  "
            f"{max(shares):.3f}  {hits}/{len(shares)}        {met}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "study_calls.json"
    out.write_bytes(
        orjson.dumps(
            {"args": vars(args), "summary": summary, "runs": runs}, option=orjson.OPT_INDENT_2
        )
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
