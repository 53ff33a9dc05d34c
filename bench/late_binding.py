"""Choosing each pull when its call can be sent: whole-study cost under a binding rate limit.

When the rate limit binds, most calls in flight only wait at the limiter. If the study chooses a
pull first and waits afterwards, the policy pays for choices made on information that is seconds
old, and the more calls it allows in flight the more it pays. With late binding the study first
waits for the limiter's permit, then asks the policy. This bench runs the same studies (same
task, seeds and simulator) at 16 and at 256 calls in flight, with late binding on and off, all
in this process, and reports each setting's cost as a share of full evaluation and the penalty
cost(256) / cost(16); the picks are checked against the simulator's latent quality.

The simulator runs in its own process (`ape-engine sim --rpm 3000 --latency-base-ms 50`, so 50
requests a second need about 3 calls on the wire) and is started anew for every study.

    .venv/bin/python bench/late_binding.py                    # first_letter, seeds 11-13
    .venv/bin/python bench/late_binding.py --seeds 11 12 13 14 15

Writes bench/results/late_binding.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.app import StudyConfig, execute, prepare
from engine.sim import SimConfig, start_sim_process

RESULTS = Path(__file__).resolve().parent / "results"


async def _quality(session: aiohttp.ClientSession, url: str, text: str, task: str) -> float:
    async with session.get(f"{url}/sim/quality", params={"instruction": text, "task": task}) as r:
        r.raise_for_status()
        body: dict[str, Any] = await r.json()
        return float(body["quality"])


async def one_study(
    url: str, task: str, seed: int, concurrency: int, late: bool, folder: Path, rpm: float
) -> dict[str, Any]:
    config = StudyConfig.of(
        task=task,
        base_url=url,
        seed=seed,
        rpm=rpm,
        concurrency=concurrency,
        late_binding=late,
        no_cache=True,
        test_size=20,
        journal=str(folder / f"{task}-{seed}-{concurrency}-{late}.jsonl"),
    )
    result = await execute(prepare(config), say=lambda _: None)
    assert result.winner is not None
    async with aiohttp.ClientSession() as session:
        best = max([await _quality(session, url, c.instruction, task) for c in result.candidates])
        picked = await _quality(session, url, result.winner.instruction, task)
    return {
        "seed": seed,
        "concurrency": concurrency,
        "late_binding": late,
        "share": result.call_ratio,
        "scoring_calls": result.spend.scoring_calls,
        "seconds": result.spend.seconds,
        "regret": best - picked,
        "within_epsilon": best - picked <= 2 / result.n,
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    folder = Path(tempfile.mkdtemp(prefix="ape-late-"))
    for seed in args.seeds:
        for late in (False, True):
            for concurrency in (16, 256):
                sim = SimConfig(
                    tasks=(args.task,),
                    seed=seed,
                    latency_base_s=0.05,
                    requests_per_minute=args.rpm,
                    debug_routes=True,
                )
                with start_sim_process(sim) as url:
                    study = anyio.run(
                        one_study, url, args.task, seed, concurrency, late, folder, args.rpm
                    )
                runs.append(study)
                print(orjson.dumps(study).decode(), flush=True)
    return runs


def table(runs: list[dict[str, Any]]) -> dict[str, Any]:
    print(
        "\n| late binding | cost at 16 in flight | cost at 256 | penalty 256 / 16 | picks within eps |"
    )
    print("|---|---|---|---|---|")
    summary: dict[str, Any] = {}
    for late in (False, True):
        mine = [r for r in runs if r["late_binding"] is late]
        low = statistics.median(r["share"] for r in mine if r["concurrency"] == 16)
        high = statistics.median(r["share"] for r in mine if r["concurrency"] == 256)
        ratios = [
            b["share"] / a["share"]
            for a in mine
            for b in mine
            if a["seed"] == b["seed"] and a["concurrency"] == 16 and b["concurrency"] == 256
        ]
        good = sum(r["within_epsilon"] for r in mine)
        name = "on" if late else "off"
        summary[name] = {
            "cost_16": low,
            "cost_256": high,
            "penalty_median": statistics.median(ratios),
            "penalty_max": max(ratios),
            "within_epsilon": f"{good}/{len(mine)}",
        }
        print(
            f"| {name} | {low:.3f} | {high:.3f} | {statistics.median(ratios):.2f}x (max "
            f"{max(ratios):.2f}x) | {good}/{len(mine)} |"
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="first_letter")
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--rpm", type=float, default=3000.0)
    args = parser.parse_args()
    runs = run(args)
    summary = table(runs)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "late_binding.json"
    out.write_bytes(orjson.dumps({"args": vars(args), "summary": summary, "runs": runs}))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
