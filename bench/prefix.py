"""Sending each candidate's calls back to back: what a server's prefix cache gives a study.

A scoring prompt is the template and the candidate's instruction, then one example's input.
Servers keep the key-value cache of prompt prefixes they have just seen (llama.cpp reuses the
previous call's common prefix; vLLM and SGLang cache prefixes and evict the least recently used),
so calls of one candidate sent back to back cost less than the same calls interleaved with other
candidates'. The study groups the pulls it chooses together by candidate (`group_by_candidate`,
on by default); this bench runs the same studies (same seeds) with grouping on and off, in this
process, on:

(a) the local backend: SmolLM2-135M through `ape-engine local`'s server, one thread,
    log-probability scoring (the prompt is all the work); the proposals come from the simulator
    so that only scoring runs on the model. Reported: scoring calls per second (from the first
    to the last scoring answer), for the study's grouping on and off, each with the server
    running waiting calls in arrival order and in prefix order (`ape-engine local --order`);
    the baseline is grouping off with arrival order.
(b) the simulator with its prefix-cache model (`engine.serving.latency`): 10 ms per call plus
    1 ms per uncached prompt token, a cached token costing 0.1 of that, and a cache of 120
    tokens (the last three or four prompts: a server under load from other users, where eviction
    makes the order matter); 8 calls in flight, no rate limit. Reported: study wall time.

Both report the cost in scoring calls and the picks (latent quality, from the simulator).

    .venv/bin/python bench/prefix.py                   # both parts, 3 seeds
    .venv/bin/python bench/prefix.py --parts sim --seeds 1 2 3 4 5

Writes bench/results/prefix.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.app import StudyConfig, open_study, prepare
from engine.local import LocalSettings, serve_local
from engine.local.backend import Order
from engine.sim import SimConfig, serve_sim
from engine.study.events import Event, PullDone
from engine.task import load_task

RESULTS = Path(__file__).resolve().parent / "results"
TASK = "larger_number"


class PullClock:
    """An observer: when each scoring answer came."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, PullDone):
            self.times.append(time.perf_counter())

    def rate(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


async def _quality(url: str, text: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/sim/quality", params={"instruction": text, "task": TASK}) as answer,
    ):
        answer.raise_for_status()
        body: dict[str, Any] = await answer.json()
        return float(body["quality"])


async def _run(config: StudyConfig, sim_url: str, **labels: Any) -> dict[str, Any]:
    clock = PullClock()
    started = time.perf_counter()
    async with open_study(prepare(config), observers=[clock], say=lambda _: None) as study:
        result = await study.run()
    wall = time.perf_counter() - started
    assert result.winner is not None
    best = max([await _quality(sim_url, c.instruction) for c in result.candidates])
    picked = await _quality(sim_url, result.winner.instruction)
    return {
        **labels,
        "group_by_candidate": config.group_by_candidate,
        "seed": config.seed,
        "scoring_calls": result.spend.scoring_calls,
        "share": result.call_ratio,
        "calls_per_s": clock.rate(),
        "wall_s": wall,
        "regret": best - picked,
        "within_epsilon": best - picked <= 2 / result.n,
    }


LOCAL_RUNS: tuple[tuple[bool, Order], ...] = (
    (False, "arrival"),  # the baseline
    (True, "arrival"),
    (False, "prefix"),
    (True, "prefix"),
)


async def local_study(
    seed: int, grouping: bool, order: Order, folder: Path, budget: int
) -> dict[str, Any]:
    task = load_task(TASK, seed=seed)
    settings = LocalSettings(model="smollm2", threads=1, queue=256, order=order)
    async with (
        serve_sim(SimConfig(tasks=(task,), seed=seed, debug_routes=True)) as sim,
        serve_local(settings) as local,
    ):
        config = StudyConfig(
            task=TASK,
            seed=seed,
            base_url=local.base_url,
            model="smollm2",
            proposal_base_url=sim.base_url,
            proposal_model="sim-1",
            api="completions",
            scoring="logprob",
            concurrency=8,
            budget_scoring_calls=budget,
            variant_rounds=0,
            test_size=5,
            no_cache=True,
            group_by_candidate=grouping,
            journal=str(folder / f"local-{seed}-{grouping}-{order}.jsonl"),
        )
        return await _run(config, sim.base_url, order=order)


async def sim_study(seed: int, grouping: bool, folder: Path) -> dict[str, Any]:
    task = load_task(TASK, seed=seed)
    sim = SimConfig(
        tasks=(task,),
        seed=seed,
        debug_routes=True,
        latency_base_s=0.01,
        latency_per_prompt_token_s=0.001,
        prefix_cache_tokens=120,
        cached_token_cost=0.1,
    )
    async with serve_sim(sim) as server:
        config = StudyConfig(
            task=TASK,
            seed=seed,
            base_url=server.base_url,
            concurrency=8,
            test_size=20,
            no_cache=True,
            group_by_candidate=grouping,
            journal=str(folder / f"sim-{seed}-{grouping}.jsonl"),
        )
        run = await _run(config, server.base_url)
        cache = server.prefix_cache_stats()
        run["cached_prompt_share"] = cache["hits"] / max(1, cache["hits"] + cache["misses"])
        return run


def summarize(name: str, runs: list[dict[str, Any]], measure: str) -> dict[str, Any]:
    on = [r for r in runs if r["group_by_candidate"]]
    off = [r for r in runs if not r["group_by_candidate"]]
    ratios = [
        (a[measure] / b[measure]) if measure == "calls_per_s" else (b[measure] / a[measure])
        for a in on
        for b in off
        if a["seed"] == b["seed"]
    ]
    row = {
        "speedup_median": statistics.median(ratios),
        "speedup_min": min(ratios),
        "calls_on": statistics.median(r["scoring_calls"] for r in on),
        "calls_off": statistics.median(r["scoring_calls"] for r in off),
        "picks_on": f"{sum(r['within_epsilon'] for r in on)}/{len(on)}",
        "picks_off": f"{sum(r['within_epsilon'] for r in off)}/{len(off)}",
    }
    unit = "scoring calls/s" if measure == "calls_per_s" else "wall s"
    print(f"\n{name}: {unit}, grouping on vs off (per seed: on / off)")
    for a in on:
        b = next(r for r in off if r["seed"] == a["seed"])
        print(f"  seed {a['seed']}: {a[measure]:.2f} / {b[measure]:.2f}")
    print(
        f"| {name} | {row['speedup_median']:.2f}x (min {row['speedup_min']:.2f}x) | "
        f"{row['calls_on']:.0f} / {row['calls_off']:.0f} | {row['picks_on']} / "
        f"{row['picks_off']} |"
    )
    return row


def summarize_local(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each (grouping, order) against the baseline of the same seed: calls per second."""
    rows: dict[str, Any] = {}
    print("\nlocal: scoring calls/s against grouping off, arrival order (median, min over seeds)")
    print("| grouping | server order | calls/s (median) | ratio (median) | ratio (min) | picks |")
    print("|---|---|---|---|---|---|")
    for grouping, order in LOCAL_RUNS:
        mine = [r for r in runs if r["group_by_candidate"] == grouping and r["order"] == order]
        ratios = [
            r["calls_per_s"] / base["calls_per_s"]
            for r in mine
            for base in runs
            if base["seed"] == r["seed"]
            and (base["group_by_candidate"], base["order"]) == (LOCAL_RUNS[0])
        ]
        name = f"{'on' if grouping else 'off'}/{order}"
        rows[name] = {
            "calls_per_s": statistics.median(r["calls_per_s"] for r in mine),
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "scoring_calls": statistics.median(r["scoring_calls"] for r in mine),
            "picks": f"{sum(r['within_epsilon'] for r in mine)}/{len(mine)}",
        }
        row = rows[name]
        print(
            f"| {'on' if grouping else 'off'} | {order} | {row['calls_per_s']:.2f} | "
            f"{row['ratio_median']:.2f}x | {row['ratio_min']:.2f}x | {row['picks']} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=("local", "sim"), default=["local", "sim"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--local-budget", type=int, default=400)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ape-prefix-"))
    results: dict[str, Any] = {"args": vars(args)}
    for part in args.parts:
        runs = []
        for seed in args.seeds:
            if part == "local":
                for grouping, order in LOCAL_RUNS:
                    budget = args.local_budget
                    runs.append(anyio.run(local_study, seed, grouping, order, folder, budget))
                    print(orjson.dumps(runs[-1]).decode(), flush=True)
            else:
                for grouping in (True, False):
                    runs.append(anyio.run(sim_study, seed, grouping, folder))
                    print(orjson.dumps(runs[-1]).decode(), flush=True)
        if part == "local":
            summary = summarize_local(runs)
        else:
            summary = summarize(part, runs, "wall_s")
        results[part] = {"runs": runs, "summary": summary}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prefix.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"written to {RESULTS / 'prefix.json'}")


if __name__ == "__main__":
    main()
